"""Import weights users already hold, and export ours to other layouts."""
