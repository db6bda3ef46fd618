"""Print docs/api.md, generated from the API models (`make crds` writes it)."""

from kubetune_operator.api.reference import render_api_reference

if __name__ == "__main__":
    print(render_api_reference(), end="")
