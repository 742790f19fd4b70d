"""The models and inference profiles the emulator knows, and how fast each one streams.

One table answers every "which model is this?" question: the runtime resolves a
model id, a cross-region inference profile id or either ARN to a ModelSpec; the
control plane lists and describes the same specs. Pacing lives here too because
it is a property of the model (Pro thinks longer than Micro), scaled at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"

# Profile prefix -> the regions a system-defined cross-region profile routes to.
PROFILE_REGIONS: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-west-1", "eu-west-3", "eu-north-1"),
    "apac": ("ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2"),
}
_PROFILE_LABELS = {"us": "US", "eu": "EU", "apac": "APAC"}

# Fixed timestamps so control-plane answers are reproducible.
PROFILE_CREATED_AT = "2024-11-29T00:00:00Z"


@dataclass(frozen=True)
class Pacing:
    """Unscaled timings: seconds before the first delta and between deltas."""

    first_token_s: float
    per_delta_s: float


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    family: str  # "micro", "lite", "pro", "premier": picks the answer style
    name: str
    max_output_tokens: int
    input_modalities: tuple[str, ...]
    pacing: Pacing
    # False models exist in the catalog but the emulated account has no access
    # to them, so inference answers AccessDeniedException.
    access_granted: bool = True
    profile_prefixes: tuple[str, ...] = ("us", "eu", "apac")
    # performanceConfig latency "optimized" is accepted (Nova Pro only).
    latency_optimized: bool = False

    def takes(self, kind: str) -> bool:
        """Whether the model reads an image, document or video content block."""
        # Document understanding comes with the image modality (Lite, Pro, Premier).
        modality = {"image": "IMAGE", "document": "IMAGE", "video": "VIDEO"}[kind]
        return modality in self.input_modalities

    def arn(self, region: str = DEFAULT_REGION) -> str:
        return f"arn:aws:bedrock:{region}::foundation-model/{self.model_id}"


# Max output tokens: 10,000 for Nova Micro, Lite and Pro (Bedrock rejects more
# with "exceeds the model limit of 10000"); Premier's published limit is 32,000.
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "amazon.nova-micro-v1:0", "micro", "Nova Micro", 10_000, ("TEXT",), Pacing(0.120, 0.008)
    ),
    ModelSpec(
        "amazon.nova-lite-v1:0",
        "lite",
        "Nova Lite",
        10_000,
        ("TEXT", "IMAGE", "VIDEO"),
        Pacing(0.200, 0.012),
    ),
    ModelSpec(
        "amazon.nova-pro-v1:0",
        "pro",
        "Nova Pro",
        10_000,
        ("TEXT", "IMAGE", "VIDEO"),
        Pacing(0.350, 0.020),
        latency_optimized=True,
    ),
    ModelSpec(
        "amazon.nova-premier-v1:0",
        "premier",
        "Nova Premier",
        32_000,
        ("TEXT", "IMAGE", "VIDEO"),
        Pacing(0.500, 0.030),
        access_granted=False,
        profile_prefixes=("us",),
    ),
)

_BY_ID = {spec.model_id: spec for spec in MODELS}
_FOUNDATION_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:[a-z0-9-]+::foundation-model/(?P<id>.+)$")
_PROFILE_ARN = re.compile(
    r"^arn:aws[a-z-]*:bedrock:[a-z0-9-]+:\d{12}:inference-profile/(?P<id>.+)$"
)


@dataclass(frozen=True)
class InferenceProfile:
    profile_id: str  # e.g. "us.amazon.nova-micro-v1:0"
    prefix: str
    model: ModelSpec

    @property
    def name(self) -> str:
        return f"{_PROFILE_LABELS[self.prefix]} {self.model.name}"

    @property
    def regions(self) -> tuple[str, ...]:
        return PROFILE_REGIONS[self.prefix]

    def arn(self, region: str = DEFAULT_REGION) -> str:
        return f"arn:aws:bedrock:{region}:{ACCOUNT_ID}:inference-profile/{self.profile_id}"


PROFILES: tuple[InferenceProfile, ...] = tuple(
    InferenceProfile(f"{prefix}.{spec.model_id}", prefix, spec)
    for spec in MODELS
    for prefix in spec.profile_prefixes
)
_PROFILES_BY_ID = {profile.profile_id: profile for profile in PROFILES}


def find_model(model_id: str) -> ModelSpec | None:
    """A foundation model by its plain id or foundation-model ARN (control-plane lookups)."""
    match = _FOUNDATION_ARN.match(model_id)
    return _BY_ID.get(match.group("id") if match else model_id)


def find_profile(identifier: str) -> InferenceProfile | None:
    """A system-defined inference profile by id or ARN."""
    match = _PROFILE_ARN.match(identifier)
    return _PROFILES_BY_ID.get(match.group("id") if match else identifier)


def resolve(identifier: str) -> ModelSpec | None:
    """The model that runtime inference on `identifier` runs: a model id, a profile id or an ARN."""
    spec = find_model(identifier)
    if spec is not None:
        return spec
    profile = find_profile(identifier)
    return None if profile is None else profile.model
