"""Example models that ship with hbdk-sim, and the scripts that build them."""

from importlib import resources
from pathlib import Path


def example_path(name: str = "mobilenet_v1_tiny") -> Path:
    """Path of a bundled example `.hbir` file."""
    path = Path(str(resources.files(__package__).joinpath(f"{name}.hbir")))
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.hbir"))
        raise FileNotFoundError(f"no bundled example '{name}'; available: {', '.join(available)}")
    return path
