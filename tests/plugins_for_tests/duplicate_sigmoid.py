from ganlab import hookimpl


@hookimpl
def register_heads(register):
    register("sigmoid", object, summary="clashes with the built-in sigmoid")
