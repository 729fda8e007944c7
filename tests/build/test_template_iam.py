"""The template as deployed: transformed by SAM to CloudFormation (samtranslator, installed with
SAM), its conditions evaluated with and without subnets, then read as IAM would: every action x
resource each function's role gets, the API's throttling, and what outlives the stack."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from photo_restore_tools.template import api_routes, load_template

ISSUER = "https://ref.supabase.co/auth/v1"
WITH_SUBNETS = {"SubnetIds": "subnet-0a,subnet-0b", "SecurityGroupIds": "sg-0a"}
ROLES = (
    "ApiFunctionRole",
    "WorkerFunctionRole",
    "DlqFunctionRole",
    "SweeperFunctionRole",
    "IngestFunctionRole",
)

# The only wildcard resources a role may have, and why: IAM has no narrower form of them.
WILDCARDS_ALLOWED = {
    # X-Ray's trace uploads take no resource.
    "xray:PutTraceSegments": "always",
    "xray:PutTelemetryRecords": "always",
    # The network interfaces Lambda manages for a function in the VPC (what
    # AWSLambdaVPCAccessExecutionRole grants), only when SubnetIds is given.
    "ec2:CreateNetworkInterface": "vpc",
    "ec2:DescribeNetworkInterfaces": "vpc",
    "ec2:DescribeSubnets": "vpc",
    "ec2:DeleteNetworkInterface": "vpc",
    "ec2:AssignPrivateIpAddresses": "vpc",
    "ec2:UnassignPrivateIpAddresses": "vpc",
}

RESTORED = "${PhotoBucket.Arn}/restored/*"
EVENT_BUS = (
    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
)
LIST_RESTORED = ("s3:ListBucket", "${PhotoBucket.Arn}", "s3:prefix=restored/*")
ORIGINALS = "${PhotoBucket.Arn}/${OriginalsPrefix}*"


def logs(group: str) -> set[tuple[str, str, str]]:
    return {(a, f"${{{group}.Arn}}", "") for a in ("logs:CreateLogStream", "logs:PutLogEvents")}


def secret(name: str) -> tuple[str, str, str]:
    return ("ssm:GetParameter", f"arn:${{AWS::Partition}}:ssm:...:parameter/{name}", "")


TRACES = {("xray:PutTraceSegments", "*", ""), ("xray:PutTelemetryRecords", "*", "")}
PUBLISH = ("events:PutEvents", EVENT_BUS, "")
POLL = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
VPC = {(action, "*", "") for action, when in WILDCARDS_ALLOWED.items() if when == "vpc"}
DATABASE_URL = secret("photo-restore/${Stage}/database-url")

# Every grant of every role without subnets: (action, resource, condition).
EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "ApiFunctionRole": logs("ApiLogGroup")
    | TRACES
    | {
        DATABASE_URL,
        ("sqs:SendMessage", "${RestoreQueue.Arn}", ""),
        PUBLISH,
        ("s3:GetObject", RESTORED, ""),
        ("s3:DeleteObject", RESTORED, ""),
        # A photo's life: presigned upload PUTs, and a delete of the original and restorations.
        ("s3:PutObject", ORIGINALS, ""),
        ("s3:DeleteObject", ORIGINALS, ""),
        LIST_RESTORED,
    },
    "WorkerFunctionRole": logs("WorkerLogGroup")
    | TRACES
    | {(action, "${RestoreQueue.Arn}", "") for action in POLL}
    | {
        DATABASE_URL,
        secret("photo-restore/${Stage}/siliconflow-api-key"),
        ("sqs:ChangeMessageVisibility", "${RestoreQueue.Arn}", ""),
        ("sqs:SendMessage", "${RestoreQueue.Arn}", ""),
        PUBLISH,
        ("s3:GetObject", "${PhotoBucket.Arn}/${OriginalsPrefix}*", ""),
        ("s3:GetObject", RESTORED, ""),
        ("s3:PutObject", RESTORED, ""),
        ("s3:DeleteObject", RESTORED, ""),
        ("s3:ListBucket", "${PhotoBucket.Arn}", "s3:prefix=${OriginalsPrefix}*|restored/*"),
    },
    "DlqFunctionRole": logs("DlqLogGroup")
    | TRACES
    | {(action, "${RestoreDeadLetterQueue.Arn}", "") for action in POLL}
    | {
        DATABASE_URL,
        ("sqs:ChangeMessageVisibility", "${RestoreDeadLetterQueue.Arn}", ""),
        PUBLISH,
        ("s3:GetObject", RESTORED, ""),
        ("s3:DeleteObject", RESTORED, ""),
        LIST_RESTORED,
    },
    "SweeperFunctionRole": logs("SweeperLogGroup")
    | TRACES
    | {DATABASE_URL, PUBLISH, ("s3:GetObject", RESTORED, ""), ("s3:DeleteObject", RESTORED, "")}
    | {LIST_RESTORED, ("s3:DeleteObject", ORIGINALS, "")},  # what an expired upload left
    "IngestFunctionRole": logs("IngestLogGroup")
    | TRACES
    | {(action, "${IngestQueue.Arn}", "") for action in POLL}
    | {
        DATABASE_URL,
        PUBLISH,
        ("s3:GetObject", ORIGINALS, ""),
        ("s3:DeleteObject", ORIGINALS, ""),
        ("s3:ListBucket", "${PhotoBucket.Arn}", "s3:prefix=${OriginalsPrefix}*"),
    },
}


# --- The transformed template, its conditions evaluated -----------------------------------------


def deployed(parameters: dict[str, str]) -> dict[str, Any]:
    """What CloudFormation deploys for these parameter values: SAM's transform, then every
    condition evaluated, `Fn::If` resolved and conditional resources left out."""
    translator = pytest.importorskip("samtranslator.translator.translator")
    sam_parser = pytest.importorskip("samtranslator.parser.parser")
    sam = json.loads(json.dumps(copy.deepcopy(load_template())))
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/function.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://bucket/layer.zip"
    values = {"SupabaseJwtIssuer": ISSUER, **parameters}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
        cloudformation: dict[str, Any] = translator.Translator(
            managed_policy_map={}, sam_parser=sam_parser.Parser()
        ).translate(sam_template=sam, parameter_values=values)
    conditions = evaluate_conditions(cloudformation, values)
    kept = {
        name: resolve_ifs(resource, conditions)
        for name, resource in cloudformation["Resources"].items()
        if conditions.get(resource.get("Condition", ""), True)
    }
    return {**cloudformation, "Resources": kept}


def evaluate_conditions(template: dict[str, Any], values: dict[str, str]) -> dict[str, bool]:
    """Every condition's value for these parameter values (the defaults for the rest)."""
    parameters: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        given = values.get(name, spec.get("Default", ""))
        is_list = spec["Type"] == "CommaDelimitedList"
        parameters[name] = str(given).split(",") if is_list else given
    evaluated: dict[str, bool] = {}
    functions: dict[str, Callable[[Any], Any]] = {
        "Ref": lambda name: parameters[name],
        "Condition": lambda name: condition(name),
        "Fn::Equals": lambda args: value(args[0]) == value(args[1]),
        "Fn::Not": lambda args: not value(args[0]),
        "Fn::And": lambda args: all(value(a) for a in args),
        "Fn::Or": lambda args: any(value(a) for a in args),
        "Fn::Join": lambda args: args[0].join(value(args[1])),
    }

    def value(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        [(function, argument)] = node.items()
        return functions[function](argument)

    def condition(name: str) -> bool:
        if name not in evaluated:
            evaluated[name] = bool(value(template["Conditions"][name]))
        return evaluated[name]

    for name in template.get("Conditions", {}):
        condition(name)
    return evaluated


_NO_VALUE = object()


def resolve_ifs(node: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(node, list):
        items = [resolve_ifs(item, conditions) for item in node]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if node == {"Ref": "AWS::NoValue"}:
        return _NO_VALUE
    if set(node) == {"Fn::If"}:
        name, when_true, when_false = node["Fn::If"]
        return resolve_ifs(when_true if conditions[name] else when_false, conditions)
    resolved = {key: resolve_ifs(value, conditions) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not _NO_VALUE}


@pytest.fixture(scope="module")
def without_subnets() -> dict[str, Any]:
    return deployed({})


@pytest.fixture(scope="module")
def with_subnets() -> dict[str, Any]:
    return deployed(WITH_SUBNETS)


# --- Reading roles as IAM does ------------------------------------------------------------------


def describe(resource: Any) -> str:
    """A policy resource as readable text: an ARN template, `${X.Arn}`, or `*`."""
    if isinstance(resource, str):
        return resource
    if "Fn::GetAtt" in resource:
        name, attribute = resource["Fn::GetAtt"]
        return f"${{{name}.{attribute}}}"
    sub = resource["Fn::Sub"]
    if isinstance(sub, list):  # the secrets' ARNs: the parameter name is a variable
        arn, variables = sub
        name = variables["Name"]
        text = name["Fn::Sub"] if isinstance(name, dict) and "Fn::Sub" in name else name
        return f"{str(arn).split(':ssm:')[0]}:ssm:...:parameter{text}"
    return str(sub)


def describe_condition(condition: dict[str, Any] | None) -> str:
    if not condition:
        return ""
    [(operator, tests)] = condition.items()
    assert operator == "StringLike", condition
    return ";".join(
        f"{key}="
        + "|".join(describe(v) for v in (values if isinstance(values, list) else [values]))
        for key, values in tests.items()
    )


def statements(template: dict[str, Any], role: str) -> Iterator[dict[str, Any]]:
    properties = template["Resources"][role]["Properties"]
    for policy in properties.get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]
    for arn in properties.get("ManagedPolicyArns", []):
        assert isinstance(arn, dict) and "Ref" in arn, f"{role}: AWS managed policy {arn}"
        managed = template["Resources"][arn["Ref"]]
        assert managed["Type"] == "AWS::IAM::ManagedPolicy"
        yield from managed["Properties"]["PolicyDocument"]["Statement"]


def grants(template: dict[str, Any], role: str) -> set[tuple[str, str, str]]:
    """Every (action, resource, condition) the role allows."""
    table = set()
    for statement in statements(template, role):
        assert statement["Effect"] == "Allow" and "NotAction" not in statement, statement
        actions, targets = statement["Action"], statement["Resource"]
        condition = describe_condition(statement.get("Condition"))
        for action in [actions] if isinstance(actions, str) else actions:
            for target in targets if isinstance(targets, list) else [targets]:
                table.add((action, describe(target), condition))
    return table


def is_wildcard(resource: str) -> bool:
    """`*`, or an ARN with a `*` for its service, region, account or whole resource."""
    return resource == "*" or bool(re.search(r":\*(:|$)", resource))


def table(template: dict[str, Any]) -> str:
    lines = [f"{role}: {g}" for role in ROLES for g in sorted(grants(template, role))]
    return "\n".join(lines)


# --- Least privilege ---------------------------------------------------------------------------


def test_every_function_runs_with_its_own_role_and_no_aws_managed_policy(
    without_subnets: dict[str, Any],
) -> None:
    resources = without_subnets["Resources"]
    roles = {name for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == set(ROLES)
    for role in ROLES:
        function = resources[role.removesuffix("Role")]["Properties"]
        assert function["Role"] == {"Fn::GetAtt": [role, "Arn"]}
        trust = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
        list(statements(without_subnets, role))  # fails on an AWS managed policy


@pytest.mark.parametrize("subnets", [False, True], ids=["without-subnets", "with-subnets"])
def test_no_wildcard_resource_outside_the_documented_allow_list(
    subnets: bool, without_subnets: dict[str, Any], with_subnets: dict[str, Any]
) -> None:
    template = with_subnets if subnets else without_subnets
    for role in ROLES:
        for action, resource, _ in grants(template, role):
            if is_wildcard(resource) or "*" in action:
                allowed = WILDCARDS_ALLOWED.get(action)
                assert allowed == "always" or (allowed == "vpc" and subnets), (
                    f"{role}: {action} on {resource}\n{table(template)}"
                )


def test_each_role_gets_exactly_its_queue_bucket_prefixes_log_group_and_secrets(
    without_subnets: dict[str, Any],
) -> None:
    for role, expected in EXPECTED.items():
        assert grants(without_subnets, role) == expected, f"{role}\n{table(without_subnets)}"


def test_network_interface_actions_only_when_subnets_are_given(
    without_subnets: dict[str, Any], with_subnets: dict[str, Any]
) -> None:
    for role in ROLES:
        assert not [g for g in grants(without_subnets, role) if g[0].startswith("ec2:")], role
        assert grants(with_subnets, role) == EXPECTED[role] | VPC, role
    for template, in_vpc in ((without_subnets, False), (with_subnets, True)):
        for role in ROLES:
            function = template["Resources"][role.removesuffix("Role")]["Properties"]
            assert ("VpcConfig" in function) is in_vpc
    vpc = with_subnets["Resources"]["ApiFunction"]["Properties"]["VpcConfig"]
    assert vpc == {
        "SubnetIds": {"Ref": "SubnetIds"},
        "SecurityGroupIds": {"Ref": "SecurityGroupIds"},
    }


def test_the_sqs_consumers_poll_through_event_source_mappings_their_roles_allow(
    without_subnets: dict[str, Any],
) -> None:
    mappings = {
        r["Properties"]["FunctionName"]["Ref"]: describe(r["Properties"]["EventSourceArn"])
        for r in without_subnets["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert mappings == {
        "WorkerFunction": "${RestoreQueue.Arn}",
        "DlqFunction": "${RestoreDeadLetterQueue.Arn}",
        "IngestFunction": "${IngestQueue.Arn}",
    }
    for function, queue in mappings.items():
        allowed = {(a, r) for a, r, _ in grants(without_subnets, f"{function}Role")}
        assert {(action, queue) for action in POLL} <= allowed


# --- Throttling ------------------------------------------------------------------------------


def stage(template: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ApiGatewayV2::Stage"
    ]
    [only] = found
    return only


def test_every_route_is_throttled_and_the_restore_post_tighter(
    without_subnets: dict[str, Any],
) -> None:
    settings = stage(without_subnets)
    parameters = without_subnets["Parameters"]
    default = {
        name: int(spec["Default"]) for name, spec in parameters.items() if "Throttling" in name
    }
    assert settings["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
    }
    restore = "POST /photos/{photo_id}/restore"
    assert set(settings["RouteSettings"]) == {restore}
    assert restore in {route.key for route in api_routes()}
    assert settings["RouteSettings"][restore] == {
        "ThrottlingBurstLimit": {"Ref": "RestoreThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "RestoreThrottlingRateLimit"},
    }
    assert default["RestoreThrottlingBurstLimit"] < default["ApiThrottlingBurstLimit"]
    assert default["RestoreThrottlingRateLimit"] < default["ApiThrottlingRateLimit"]
    for name in ("ApiThrottlingBurstLimit", "ApiThrottlingRateLimit"):
        assert parameters[name]["MinValue"] >= 1  # 0 would refuse every request


# --- What outlives the stack -------------------------------------------------------------------


def test_dead_messages_and_logs_are_kept_when_the_stack_is_deleted(
    without_subnets: dict[str, Any],
) -> None:
    resources = without_subnets["Resources"]
    kept = ["RestoreDeadLetterQueue", "IngestDeadLetterQueue", "PhotoBucket"] + [
        name for name, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"
    ]
    assert len(kept) == 9  # the API's access log and the five functions' logs
    for name in kept:
        assert resources[name]["DeletionPolicy"] == "Retain", name
        assert resources[name]["UpdateReplacePolicy"] == "Retain", name


def test_bucket_access_logging_is_an_option(without_subnets: dict[str, Any]) -> None:
    assert "AccessLogBucket" not in without_subnets["Resources"]
    assert "LoggingConfiguration" not in without_subnets["Resources"]["PhotoBucket"]["Properties"]
    logging = deployed({"BucketAccessLogging": "enabled"})["Resources"]
    assert logging["PhotoBucket"]["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "AccessLogBucket"},
        "LogFilePrefix": "photo-bucket/",
    }
    assert logging["AccessLogBucket"]["DeletionPolicy"] == "Retain"
    [delivery, deny] = logging["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Condition"]["ArnLike"] == {
        "aws:SourceArn": {"Fn::GetAtt": ["PhotoBucket", "Arn"]}
    }
    assert deny["Effect"] == "Deny" and deny["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }


def test_the_apis_internal_errors_alarm_on_the_metric_it_emits() -> None:
    """A bug caught at the edge is a 500 of a successful invocation: Lambda's Errors miss it."""
    from photo_restore.http_errors import INTERNAL_ERROR_METRIC

    template = load_template()
    alarm = template["Resources"]["ApiInternalErrorsAlarm"]["Properties"]
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["Namespace"] == namespace["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["MetricName"] == INTERNAL_ERROR_METRIC
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "photo-restore-api"}]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_content_credentials_key_is_readable_only_by_the_worker_and_only_when_on(
    without_subnets: dict[str, Any],
) -> None:
    signing = deployed({"ContentCredentials": "on"})
    parameter = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
    c2pa = {
        ("ssm:GetParameter", f"{parameter}/photo-restore/${{Stage}}/{name}", "")
        for name in ("c2pa-private-key", "c2pa-certificate-chain")
    }
    for role in ROLES:
        extra = c2pa if role == "WorkerFunctionRole" else set()
        assert grants(signing, role) == EXPECTED[role] | extra, f"{role}\n{table(signing)}"
    assert "C2paSigningKeyReadPolicy" not in without_subnets["Resources"]
