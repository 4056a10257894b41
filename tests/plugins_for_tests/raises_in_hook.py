from ganlab import hookimpl


@hookimpl
def register_heads(register):
    raise RuntimeError("boom while registering")
