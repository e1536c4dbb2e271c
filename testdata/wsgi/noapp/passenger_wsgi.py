# A startup file that loads fine but defines no `application` callable.


def app(environ, start_response):  # the wrong name, on purpose
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable"]
