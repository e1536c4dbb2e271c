# The startup file the loader imports: Flask apps are WSGI callables.
from app import app as application  # noqa: F401
