"""Everything people read on GitHub: texts as constants, rendering, the reporter that keeps the
tracking comment and check run current."""
