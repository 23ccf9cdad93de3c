"""`vggnet reproduce`: the paper's experiment grid (Tables 3-6) on any dataset, resumable."""
