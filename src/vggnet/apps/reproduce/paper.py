"""The paper's ILSVRC-2012 validation errors (top-1, top-5 %), for the rows the grid reproduces."""

from __future__ import annotations

# Table 3, single test scale: (config, training scale) -> (top-1, top-5).
TABLE3 = {
    ("A", "S1"): (29.6, 10.4),
    ("A-LRN", "S1"): (29.7, 10.5),
    ("B", "S1"): (28.7, 9.9),
    ("C", "S1"): (28.1, 9.4),
    ("C", "S2"): (28.1, 9.3),
    ("C", "jitter"): (27.3, 8.8),
    ("D", "S1"): (27.0, 8.8),
    ("D", "S2"): (26.8, 8.7),
    ("D", "jitter"): (25.6, 8.1),
    ("E", "S1"): (27.3, 9.0),
    ("E", "S2"): (26.9, 8.7),
    ("E", "jitter"): (25.5, 8.0),
}

# Table 4, several test scales (A and A-LRN were not evaluated so).
TABLE4 = {
    ("B", "S1"): (28.2, 9.6),
    ("C", "S1"): (27.7, 9.2),
    ("C", "S2"): (27.8, 9.2),
    ("C", "jitter"): (26.3, 8.2),
    ("D", "S1"): (26.6, 8.6),
    ("D", "S2"): (26.5, 8.6),
    ("D", "jitter"): (24.8, 7.5),
    ("E", "S1"): (26.9, 8.7),
    ("E", "S2"): (26.7, 8.6),
    ("E", "jitter"): (24.8, 7.5),
}

# Table 5, jittered nets at Q = {Smin, middle, Smax}: (config, method) -> errors.
TABLE5 = {
    ("D", "dense"): (24.8, 7.5),
    ("D", "multi-crop"): (24.6, 7.5),
    ("D", "dense+multi-crop"): (24.4, 7.2),
    ("E", "dense"): (24.8, 7.5),
    ("E", "multi-crop"): (24.6, 7.4),
    ("E", "dense+multi-crop"): (24.4, 7.1),
}

# Table 6, ensembles: the 7-net submission (here: every net of the grid, multi-scale dense),
# and D + E jittered with each protocol.
TABLE6 = {
    ("all", "dense"): (24.7, 7.5),
    ("D+E", "dense"): (24.0, 7.1),
    ("D+E", "multi-crop"): (23.9, 7.2),
    ("D+E", "dense+multi-crop"): (23.7, 6.8),
}
