"""``glcic-fast app``: a web page to remove objects from photos (``pip install 'glcic-fast[app]'``).

``server`` holds the routes and ``create_app``; ``engine`` the API's ``Completer`` per backend,
called one at a time; ``photos`` the checks on uploads and the in-memory photo store;
``static/`` the page (plain HTML, JavaScript and CSS, no build step).
"""
