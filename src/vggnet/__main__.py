"""``python -m vggnet`` (and ``torchrun -m vggnet``)."""

from vggnet.cli import main

raise SystemExit(main())
