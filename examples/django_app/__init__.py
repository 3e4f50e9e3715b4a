"""A minimal Django project in one module (:mod:`django_app.app`) wrapped by
sessionguard in :mod:`django_app.wsgi`."""
