"""`vggnet bench`: ours against torchvision, same process, interleaved repeats."""
