"""L7: one generation as a request shared by `ldmkit sample` and the server (`GenerationRequest`),
run on a loaded model (`generate`), and the parameters its images carry."""

from ldmkit.generation.parameters import model_name, save_image, webui_parameters
from ldmkit.generation.request import GenerationRequest
from ldmkit.generation.run import check_request, generate, model_inputs

__all__ = [
    "GenerationRequest",
    "check_request",
    "generate",
    "model_inputs",
    "model_name",
    "save_image",
    "webui_parameters",
]
