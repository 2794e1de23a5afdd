"""``from shoal.mldesigner import command_component, Input, Output``: the names azure-ai-ml
notebooks import from ``mldesigner``, so that an import swap is all a component file needs
(see :mod:`shoal.dsl.component_function` for why Shoal does not run the real package)."""

from shoal.dsl.component_function import command_component
from shoal.entities.io import Input, Output

__all__ = ["Input", "Output", "command_component"]
