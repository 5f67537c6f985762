"""Where uploaded files' bytes live (``storage``) and how expired files and uploads leave
(``sweep``). The routes are ``parley.server.faces.files``; the rows, ``parley.store.files``."""
