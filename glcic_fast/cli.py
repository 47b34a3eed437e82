"""The ``glcic-fast`` command (filled in below)."""
def main(argv=None):
    return 0
