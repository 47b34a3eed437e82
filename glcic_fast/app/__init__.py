"""The ``glcic-fast app`` web application (needs ``pip install 'glcic-fast[app]'``)."""
