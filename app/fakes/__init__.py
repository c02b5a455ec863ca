"""The GitHub and model API fakes: what tests and the demo talk to where the real services are out
of reach. The production path never imports them (tests/test_layout.py)."""
