"""The emulated knowledge bases: which ids exist, their state, and the corpus they search.

KBDUALNOVA is ACTIVE and searches the passages shipped in
corpus/passages.json (Amazon Bedrock and Nova, in English and Korean);
KBNOTREADY is still CREATING, so Retrieve on it is a ConflictException.
Any other well-formed id is ResourceNotFoundException; an id that is not
1 to 10 letters and digits is ValidationException. Retrieve also takes a
knowledge base's ARN in place of its id, as Bedrock does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from bedrock_emulator.catalog import ACCOUNT_ID
from bedrock_emulator.errors import BedrockError, constraint
from bedrock_emulator.retrieval import Passage

ACTIVE_ID = "KBDUALNOVA"
NOT_READY_ID = "KBNOTREADY"
SOURCE_BUCKET = "dualnova-kb"
DATA_SOURCE_ID = "DSDUALNOVA"
CREATED_AT = "2025-01-06T09:00:00Z"
EMBEDDING_MODEL = "amazon.titan-embed-text-v2:0"
_ID = re.compile(r"[0-9a-zA-Z]{1,10}")
# Retrieve also takes the knowledge base's ARN (botocore's KnowledgeBaseIdentifier pattern).
_ARN = re.compile(
    r"arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:knowledge-base/(?P<id>[0-9a-zA-Z]{10})"
)


@dataclass(frozen=True)
class KnowledgeBase:
    knowledge_base_id: str
    name: str
    status: str
    description: str

    def arn(self, region: str) -> str:
        return f"arn:aws:bedrock:{region}:{ACCOUNT_ID}:knowledge-base/{self.knowledge_base_id}"

    def describe(self, region: str) -> dict[str, Any]:
        """GetKnowledgeBase's `knowledgeBase`, with the members botocore's model requires."""
        collection = f"arn:aws:aoss:{region}:{ACCOUNT_ID}:collection/{self.name}"
        return {
            "knowledgeBaseId": self.knowledge_base_id,
            "name": self.name,
            "knowledgeBaseArn": self.arn(region),
            "description": self.description,
            "roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/DualNovaKnowledgeBaseRole",
            "knowledgeBaseConfiguration": {
                "type": "VECTOR",
                "vectorKnowledgeBaseConfiguration": {
                    "embeddingModelArn": (
                        f"arn:aws:bedrock:{region}::foundation-model/{EMBEDDING_MODEL}"
                    )
                },
            },
            "storageConfiguration": {
                "type": "OPENSEARCH_SERVERLESS",
                "opensearchServerlessConfiguration": {
                    "collectionArn": collection,
                    "vectorIndexName": f"{self.name}-index",
                    "fieldMapping": {
                        "vectorField": "embedding",
                        "textField": "AMAZON_BEDROCK_TEXT_CHUNK",
                        "metadataField": "AMAZON_BEDROCK_METADATA",
                    },
                },
            },
            "status": self.status,
            "createdAt": CREATED_AT,
            "updatedAt": CREATED_AT,
        }


KNOWLEDGE_BASES = {
    ACTIVE_ID: KnowledgeBase(
        ACTIVE_ID, "dualnova-kb", "ACTIVE", "Amazon Bedrock and Amazon Nova, in English and Korean."
    ),
    NOT_READY_ID: KnowledgeBase(
        NOT_READY_ID, "dualnova-kb-not-ready", "CREATING", "A knowledge base still being created."
    ),
}


def from_arn(identifier: str) -> str:
    """The id a knowledge-base ARN names; any other identifier as it is."""
    match = _ARN.fullmatch(identifier)
    return match.group("id") if match else identifier


def check_id(identifier: str) -> None:
    """ValidationException for an id that is not 1 to 10 letters and digits."""
    if not _ID.fullmatch(identifier):
        raise constraint(
            "knowledgeBaseId",
            identifier,
            "Member must satisfy regular expression pattern: [0-9a-zA-Z]{1,10}",
        )


def find(identifier: str) -> KnowledgeBase:
    """The knowledge base `identifier` names, or Bedrock's error for it."""
    check_id(identifier)
    found = KNOWLEDGE_BASES.get(identifier)
    if found is None:
        raise BedrockError(
            "ResourceNotFoundException", f"Knowledge base {identifier} does not exist."
        )
    return found


def not_active(kb: KnowledgeBase) -> BedrockError:
    return BedrockError(
        "ConflictException",
        f"Knowledge base {kb.knowledge_base_id} is not ACTIVE (status {kb.status}).",
    )


@cache
def corpus() -> tuple[Passage, ...]:
    """The passages KBDUALNOVA searches, with the metadata Retrieve reports and filters on."""
    raw = resources.files("bedrock_emulator").joinpath("corpus/passages.json").read_text("utf-8")
    return tuple(
        Passage(
            id=item["id"],
            text=item["text"],
            metadata={
                **item["metadata"],
                "x-amz-bedrock-kb-source-uri": source_uri(item["id"]),
                "x-amz-bedrock-kb-chunk-id": item["id"],
                "x-amz-bedrock-kb-data-source-id": DATA_SOURCE_ID,
            },
        )
        for item in json.loads(raw)["passages"]
    )


def source_uri(passage_id: str) -> str:
    return f"s3://{SOURCE_BUCKET}/{passage_id}.md"
