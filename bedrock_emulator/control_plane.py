"""The bedrock (control plane) operations a service uses to check its models.

GetFoundationModel and ListFoundationModels describe the catalog;
GetInferenceProfile and ListInferenceProfiles describe the system-defined
cross-region profiles (us., eu., apac.). An unknown id is
ResourceNotFoundException here (the runtime says ValidationException instead,
as Bedrock does). A model the account cannot use is still described: model
access only gates inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from bedrock_emulator import catalog, faults
from bedrock_emulator.auth import Caller, authenticate
from bedrock_emulator.catalog import InferenceProfile, ModelSpec
from bedrock_emulator.connection import pause
from bedrock_emulator.errors import UNRESOLVED_FOUNDATION_MODEL, BedrockError
from bedrock_emulator.replies import error_reply, hung_up, json_reply
from bedrock_emulator.requests_log import logged_body
from bedrock_emulator.state import STATE

Describe = Callable[[Caller], Any]


async def get_foundation_model(request: web.Request) -> web.StreamResponse:
    identifier = request.match_info["model_id"]
    spec = catalog.find_model(identifier)

    def describe(caller: Caller) -> Any:
        if spec is None:
            raise BedrockError("ResourceNotFoundException", UNRESOLVED_FOUNDATION_MODEL)
        return {"modelDetails": _model_json(spec, caller.region)}

    model_ids = (identifier,) if spec is None else (identifier, spec.model_id)
    return await answer(request, "GetFoundationModel", identifier, model_ids, describe)


async def list_foundation_models(request: web.Request) -> web.StreamResponse:
    query = request.query

    def describe(caller: Caller) -> Any:
        specs = [
            spec
            for spec in catalog.MODELS
            if query.get("byProvider", "amazon").lower() == "amazon"
            and query.get("byOutputModality", "TEXT") == "TEXT"
            and query.get("byInferenceType", "ON_DEMAND") == "ON_DEMAND"
            and "byCustomizationType" not in query
        ]
        return {"modelSummaries": [_model_json(spec, caller.region) for spec in specs]}

    return await answer(request, "ListFoundationModels", None, (), describe)


async def get_inference_profile(request: web.Request) -> web.StreamResponse:
    identifier = request.match_info["profile_id"]
    profile = catalog.find_profile(identifier)

    def describe(caller: Caller) -> Any:
        if profile is None:
            raise BedrockError(
                "ResourceNotFoundException", f"Inference profile {identifier} not found."
            )
        return _profile_json(profile, caller.region)

    model_ids = (identifier,) if profile is None else (identifier, profile.model.model_id)
    return await answer(request, "GetInferenceProfile", identifier, model_ids, describe)


async def list_inference_profiles(request: web.Request) -> web.StreamResponse:
    wanted = request.query.get("type", "SYSTEM_DEFINED")

    def describe(caller: Caller) -> Any:
        profiles = catalog.PROFILES if wanted == "SYSTEM_DEFINED" else ()
        return {"inferenceProfileSummaries": [_profile_json(p, caller.region) for p in profiles]}

    return await answer(request, "ListInferenceProfiles", None, (), describe)


async def answer(
    request: web.Request,
    operation: str,
    identifier: str | None,
    model_ids: Sequence[str],
    describe: Describe,
    raw: bytes | None = None,
) -> web.StreamResponse:
    """Credentials, then faults, then the description (or its not-found error).

    Shared by every operation that answers one JSON document (the control
    plane here, bedrock-runtime's ListAsyncInvokes, the knowledge-base calls);
    `raw` is the request body, kept in the log.
    """
    state = request.app[STATE]
    entry = state.log.open(operation, identifier, None, request.headers)
    if raw is not None:
        entry.body = logged_body(raw)
    try:
        caller = authenticate(request.headers)
        fault = state.faults.take(operation, model_ids)
        if fault is not None:
            entry.fault = fault.kind
            error = fault.error(operation)
            if error is not None:
                raise error
            wait_s = faults.HANG_LIMIT_S if fault.kind == "hang" else fault.delay_ms / 1000
            if not await pause(request, wait_s):
                return hung_up(entry)
        payload = describe(caller)
    except BedrockError as error:
        return error_reply(entry, error)
    return json_reply(entry, payload)


def _model_json(spec: ModelSpec, region: str) -> dict[str, Any]:
    return {
        "modelArn": spec.arn(region),
        "modelId": spec.model_id,
        "modelName": spec.name,
        "providerName": "Amazon",
        "inputModalities": list(spec.input_modalities),
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "modelLifecycle": {"status": "ACTIVE"},
    }


def _profile_json(profile: InferenceProfile, region: str) -> dict[str, Any]:
    regions = ", ".join(profile.regions)
    return {
        "inferenceProfileName": profile.name,
        "description": f"Routes requests to {profile.model.name} in {regions}.",
        "createdAt": catalog.PROFILE_CREATED_AT,
        "updatedAt": catalog.PROFILE_CREATED_AT,
        "inferenceProfileArn": profile.arn(region),
        "models": [{"modelArn": profile.model.arn(r)} for r in profile.regions],
        "inferenceProfileId": profile.profile_id,
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    }
