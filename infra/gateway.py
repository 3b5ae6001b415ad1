"""The REST API's edges: Herald's error shape for API Gateway's own errors, and one cycle broken.

API Gateway answers some requests without calling Herald (an unknown route, throttling, a
timeout). ``gateway_responses`` makes those answers look like every other Herald error,
``{"error": {"code", "message"}}``, with the codes ``chalicelib.domain.errors`` defines.
``api_overrides`` also throttles the stage (a throttled request is such an answer: 429,
code ``throttled``).

Every function gets the API's URL (``HERALD_PUBLIC_BASE_URL``), but chalice's API definition
refers to the API function by ``${APIHandler.Arn}``: the API would depend on the function and
the function on the API, a cycle CloudFormation refuses. ``detach_api_integrations`` rewrites
those references to the function's ARN built from its fixed name.
"""

from __future__ import annotations

import json

from chalicelib.domain import errors
from infra.naming import API_FUNCTION, REST_API, Json, Stack

INTERNAL_ERROR = "internal_error"  # what chalicelib.api.routing answers an unexpected error with

# API Gateway response type → (HTTP status or None to keep API Gateway's, code, fixed message).
_RESPONSES: dict[str, tuple[int | None, str, str | None]] = {
    "DEFAULT_4XX": (None, errors.BadRequest.code, None),
    "DEFAULT_5XX": (None, INTERNAL_ERROR, None),
    "UNAUTHORIZED": (401, errors.Unauthorized.code, None),
    "ACCESS_DENIED": (403, errors.Forbidden.code, None),
    # API Gateway's answer to a path or method no route has (a 403 otherwise).
    "MISSING_AUTHENTICATION_TOKEN": (404, errors.NotFound.code, "no such route"),
    "REQUEST_TOO_LARGE": (413, errors.PayloadTooLarge.code, None),
    "THROTTLED": (429, "throttled", None),
    "QUOTA_EXCEEDED": (429, "throttled", None),
    "INTEGRATION_TIMEOUT": (504, "timeout", None),
}


def gateway_responses() -> Json:
    """The ``x-amazon-apigateway-gateway-responses`` extension for chalice's API definition."""
    responses: Json = {}
    for response_type, (status, code, message) in _RESPONSES.items():
        # $context.error.messageString is API Gateway's message, already a quoted JSON string.
        message_json = json.dumps(message) if message else "$context.error.messageString"
        headers = {"gatewayresponse.header.Content-Type": "'application/json'"}
        if status == 401:
            headers["gatewayresponse.header.WWW-Authenticate"] = "'Bearer'"
        response: Json = {
            "responseParameters": headers,
            "responseTemplates": {
                "application/json": f'{{"error":{{"code":"{code}","message":{message_json}}}}}'
            },
        }
        if status is not None:
            response["statusCode"] = str(status)
        responses[response_type] = response
    return responses


def api_overrides(stack: Stack) -> Json:
    """The merge onto chalice's ``RestAPI``: the gateway responses join its definition, and
    the stage is throttled (``Settings.api_throttle_rate`` and ``api_throttle_burst``) for
    every route and method, so a flood is refused by API Gateway before it costs Lambda."""
    settings = stack.settings
    return {
        REST_API: {
            "Properties": {
                "DefinitionBody": {"x-amazon-apigateway-gateway-responses": gateway_responses()},
                "MethodSettings": [
                    {
                        "ResourcePath": "/*",
                        "HttpMethod": "*",
                        "ThrottlingRateLimit": settings.api_throttle_rate,
                        "ThrottlingBurstLimit": settings.api_throttle_burst,
                    }
                ],
            }
        }
    }


def detach_api_integrations(template: Json, stack: Stack) -> None:
    """Point the API's integrations at the API function by name, not by ``GetAtt``."""
    api = template["Resources"][REST_API]["Properties"]
    reference = f"${{{API_FUNCTION}.Arn}}"
    definition = json.dumps(api["DefinitionBody"])
    if reference not in definition:
        raise RuntimeError(f"chalice's API definition no longer refers to {reference}")
    by_name = (
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
        + stack.function_name(stack.resources.api_handler)
    )
    api["DefinitionBody"] = json.loads(definition.replace(reference, by_name))
