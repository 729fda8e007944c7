"""template.yaml as a specification: queues, bucket, API, functions, permissions and events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    EventBridgeModel,
    SqsModel,
)

from photo_restore.queue import RestoreMessage
from photo_restore.settings import Settings
from photo_restore_tools.template import api_routes, load_template
from tests.helpers.built_artifact import ROOT, function_layers

EVENTS = ROOT / "events"
FUNCTIONS = {
    "ApiFunction": "functions/api/",
    "WorkerFunction": "functions/worker/",
    "DlqFunction": "functions/dlq/",
    "SweeperFunction": "functions/sweeper/",
    "IngestFunction": "functions/ingest/",
}
# The API's routes as the template declares them: the local gateway serves exactly these
# (photo_restore_tools.template.api_routes), and test_openapi ties them to the handler's.
ROUTES = {
    "POST /photos/{photo_id}/restore",
    "DELETE /photos/{photo_id}/restore",
    "GET /photos/{photo_id}",
    "GET /photos/{photo_id}/restores",
    "PUT /photos/{photo_id}/selected-restore",
    "GET /photos",
    "POST /photos/{photo_id}/archive",
    "POST /photos/{photo_id}/unarchive",
    "DELETE /photos/{photo_id}",
    "POST /uploads",
    "GET /uploads/{upload_id}",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = template["Resources"]
    return resources


@pytest.fixture(scope="module")
def parameters(template: dict[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = template["Parameters"]
    return parameters


def properties(resources: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = resources[name]["Properties"]
    return props


def environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][function]["Properties"].get("Environment", {})
    variables.update(own.get("Variables", {}))
    return variables


# --- Parameters ------------------------------------------------------------------------------


def test_parameters_have_the_documented_defaults(parameters: dict[str, Any]) -> None:
    assert parameters["Stage"]["AllowedValues"] == ["dev", "prod"]
    assert parameters["SupabaseJwtAudience"]["Default"] == "authenticated"
    assert parameters["MaxReceiveCount"]["Default"] == 3
    assert parameters["WorkerMaximumConcurrency"]["Default"] == 5
    assert parameters["WorkerMaximumConcurrency"]["MinValue"] == 2  # the AWS minimum
    assert parameters["QueueAgeAlarmSeconds"]["Default"] == 1800
    assert parameters["OriginalsPrefix"]["Default"] == "originals/"
    assert parameters["AlarmEmail"]["Default"] == ""
    for name in ("SupabaseJwtIssuer", "SiliconFlowBaseUrl", "SiliconFlowApiKeyParameterName"):
        assert name in parameters
    # No default for the issuer: a deploy must name its Supabase project.
    assert "Default" not in parameters["SupabaseJwtIssuer"]


def test_timing_defaults_agree_with_the_settings_defaults(
    template: dict[str, Any], parameters: dict[str, Any]
) -> None:
    fields = Settings.model_fields
    worker_timeout = parameters["WorkerTimeoutSeconds"]["Default"]
    visibility = template["Mappings"]["WorkerTimeouts"][str(worker_timeout)]["VisibilityTimeout"]
    assert worker_timeout == fields["worker_timeout_seconds"].default
    assert visibility == fields["visibility_timeout_seconds"].default
    assert parameters["MaxReceiveCount"]["Default"] == fields["max_receive_count"].default
    assert parameters["SiliconFlowModel"]["Default"] == fields["siliconflow_model"].default
    assert parameters["SiliconFlowBaseUrl"]["Default"] == fields["siliconflow_base_url"].default


def test_every_allowed_worker_timeout_maps_to_six_times_its_visibility_timeout(
    template: dict[str, Any], parameters: dict[str, Any]
) -> None:
    table = template["Mappings"]["WorkerTimeouts"]
    allowed = parameters["WorkerTimeoutSeconds"]["AllowedValues"]
    assert {str(value) for value in allowed} == set(table)
    for timeout in allowed:
        visibility = table[str(timeout)]["VisibilityTimeout"]
        assert visibility >= 6 * timeout
        assert visibility <= 43_200  # the SQS maximum


# --- Queues ----------------------------------------------------------------------------------


def test_restore_queue_visibility_follows_the_worker_timeout_and_redrives_to_the_dlq(
    resources: dict[str, Any],
) -> None:
    queue = properties(resources, "RestoreQueue")
    assert queue["VisibilityTimeout"] == {
        "Fn::FindInMap": ["WorkerTimeouts", {"Ref": "WorkerTimeoutSeconds"}, "VisibilityTimeout"]
    }
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["RestoreDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert queue["SqsManagedSseEnabled"] is True


def test_dlq_keeps_messages_14_days_and_allows_redrive_from_the_restore_queue(
    resources: dict[str, Any],
) -> None:
    dlq = properties(resources, "RestoreDeadLetterQueue")
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["SqsManagedSseEnabled"] is True
    policy = dlq["RedriveAllowPolicy"]
    assert policy["redrivePermission"] == "byQueue"
    # The ARN is spelled out (a GetAtt would be a cycle): it must name the restore queue.
    queue_name = properties(resources, "RestoreQueue")["QueueName"]["Fn::Sub"]
    (source,) = policy["sourceQueueArns"]
    assert source["Fn::Sub"].endswith(f":{queue_name}")
    # The DLQ handler's timeout fits 6 times in the DLQ's visibility timeout.
    assert dlq["VisibilityTimeout"] >= 6 * properties(resources, "DlqFunction")["Timeout"]


# --- Bucket ----------------------------------------------------------------------------------


def test_bucket_is_private_and_encrypted_and_nothing_stored_expires(
    resources: dict[str, Any],
) -> None:
    bucket = properties(resources, "PhotoBucket")
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    # Before images and thumbnails live beside their restoration: no rule may expire them.
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert [r for r in rules if "ExpirationInDays" in r] == []
    assert [r["Id"] for r in rules] == ["AbortIncompleteUploads"]


def test_bucket_policy_denies_requests_without_tls(resources: dict[str, Any]) -> None:
    policy = properties(resources, "PhotoBucketPolicy")
    assert policy["Bucket"] == {"Ref": "PhotoBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# --- HTTP API --------------------------------------------------------------------------------


def test_http_api_requires_a_supabase_jwt_on_every_route(resources: dict[str, Any]) -> None:
    auth = properties(resources, "HttpApi")["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    assert authorizer["JwtConfiguration"] == {
        "issuer": {"Ref": "SupabaseJwtIssuer"},
        "audience": [{"Ref": "SupabaseJwtAudience"}],
    }
    routes = set()
    for name, resource in resources.items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event["Type"] != "HttpApi":
                continue
            assert name == "ApiFunction"
            assert event["Properties"]["ApiId"] == {"Ref": "HttpApi"}
            assert "Auth" not in event["Properties"]  # no route opts out of the default
            routes.add(f"{event['Properties']['Method']} {event['Properties']['Path']}")
    assert routes == ROUTES
    assert {route.key for route in api_routes()} == ROUTES


# --- Functions -------------------------------------------------------------------------------


def test_functions_run_python_3_13_from_their_folders(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Handler"] == "app.lambda_handler"
    assert globals_["Tracing"] == "Active"
    assert len(globals_["Architectures"]) == 1
    functions = {
        name: r["Properties"]
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert {name: props["CodeUri"] for name, props in functions.items()} == FUNCTIONS
    for props in functions.values():
        assert "Runtime" not in props and "Handler" not in props


def test_only_the_worker_and_the_ingest_get_the_imaging_layer(template: dict[str, Any]) -> None:
    shared = ["CoreLayer", "DomainLayer", "DatabaseCaLayer"]
    imaging = ["CoreLayer", "ImagingLayer", "DomainLayer", "DatabaseCaLayer"]
    assert function_layers(template) == {
        "ApiFunction": shared,
        "WorkerFunction": [
            "CoreLayer",
            "ImagingLayer",
            "WorkerLayer",
            "DomainLayer",
            "DatabaseCaLayer",
        ],
        "DlqFunction": shared,
        "SweeperFunction": shared,
        "IngestFunction": imaging,  # its checks open the image (Pillow, pillow-heif)
    }


def test_the_database_ca_layer_ships_certificates_only_and_none_is_committed(
    resources: dict[str, Any],
) -> None:
    layer = resources["DatabaseCaLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/database-ca/"
    assert "Metadata" not in layer  # copied as it is: no build
    committed = {p.name for p in (ROOT / "layers/database-ca").iterdir()}
    assert committed <= {"README.md", "supabase-prod-ca-2021.crt", "rds-global-bundle.pem"}


def test_each_functions_concurrency_is_capped_so_its_connections_are(
    resources: dict[str, Any],
) -> None:
    """The README's budget: connections = the sum of these, each container holding one."""
    reserved = {
        name: resources[name]["Properties"].get("ReservedConcurrentExecutions")
        for name in FUNCTIONS
    }
    assert reserved == {
        "ApiFunction": {"Ref": "ApiReservedConcurrency"},
        "WorkerFunction": {"Ref": "WorkerMaximumConcurrency"},
        "DlqFunction": 2,
        "SweeperFunction": 1,
        "IngestFunction": 2,
    }
    worker_source = resources["WorkerFunction"]["Properties"]["Events"]["RestoreMessages"]
    dlq_source = resources["DlqFunction"]["Properties"]["Events"]["DeadMessages"]
    assert worker_source["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "WorkerMaximumConcurrency"}
    }
    assert dlq_source["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}


def test_layers_are_built_by_sam_for_the_functions_runtime_and_architecture(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    (architecture,) = template["Globals"]["Function"]["Architectures"]
    content = {
        "CoreLayer": "layers/core/",
        "ImagingLayer": "layers/imaging/",
        "DomainLayer": "shared/",
    }
    for name, uri in content.items():
        layer = resources[name]
        assert layer["Properties"]["ContentUri"] == uri
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
        assert layer["Properties"]["CompatibleArchitectures"] == [architecture]
        assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": architecture}
    # The worker's own (face models, c2pa less its static library): layers/worker/Makefile.
    c2pa = resources["WorkerLayer"]
    assert c2pa["Properties"]["ContentUri"] == "layers/worker/"
    assert c2pa["Properties"]["CompatibleArchitectures"] == [architecture]
    assert c2pa["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": architecture}


def requirement_names(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {line.split("==")[0].split("[")[0].lower() for line in lines if line}


def test_imaging_packages_are_only_in_the_imaging_layer() -> None:
    imaging = {"pillow", "pillow-heif", "httpx", "pyvips", "pyvips-binary", "cffi", "pycparser"}
    core = requirement_names(ROOT / "layers/core/requirements.txt")
    assert requirement_names(ROOT / "layers/imaging/requirements.txt") == imaging
    assert not core & imaging
    assert {"aws-lambda-powertools", "sqlalchemy", "pg8000", "pydantic-settings"} <= core


def pinned_versions(path: Path) -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return dict(line.split("==") for line in lines if line)


@pytest.mark.parametrize("layer", ["core", "imaging", "worker"])
def test_the_dev_venv_runs_exactly_the_versions_the_layers_ship(layer: str) -> None:
    from importlib.metadata import version

    pins = pinned_versions(ROOT / "layers" / layer / "requirements.txt")
    assert pins
    assert {name: version(name) for name in pins} == pins


def test_the_venv_python_is_the_lambda_runtime(template: dict[str, Any]) -> None:
    import sys

    runtime = template["Globals"]["Function"]["Runtime"]
    assert runtime == f"python{sys.version_info.major}.{sys.version_info.minor}"


def test_shared_holds_only_the_domain_package() -> None:
    # The DomainLayer is built straight from shared/: whatever else sat there would ship too.
    # *.egg-info is an editable install's debris (gitignored); SAM leaves it out of the layer.
    entries = {p.name for p in (ROOT / "shared").iterdir() if not p.name.endswith(".egg-info")}
    assert entries == {"photo_restore"}


def test_worker_is_sized_for_one_large_photo_and_reports_partial_batch_failures(
    resources: dict[str, Any],
) -> None:
    worker = properties(resources, "WorkerFunction")
    assert worker["MemorySize"] == 1024
    assert worker["Timeout"] == {"Ref": "WorkerTimeoutSeconds"}
    (event,) = worker["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["RestoreQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "WorkerMaximumConcurrency"}
    }
    assert event["Properties"]["BatchSize"] == {"Ref": "WorkerBatchSize"}


def test_dlq_handler_consumes_the_dlq_and_the_sweeper_runs_every_five_minutes(
    resources: dict[str, Any],
) -> None:
    (dead,) = properties(resources, "DlqFunction")["Events"].values()
    assert dead["Type"] == "SQS"
    assert dead["Properties"]["Queue"] == {"Fn::GetAtt": ["RestoreDeadLetterQueue", "Arn"]}
    assert dead["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (schedule,) = properties(resources, "SweeperFunction")["Events"].values()
    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["Schedule"] == "rate(5 minutes)"


def test_environment_variables_are_settings_or_powertools_and_never_secrets(
    template: dict[str, Any],
) -> None:
    for function in FUNCTIONS:
        variables = environment(template, function)
        for name in variables:
            assert name.startswith("POWERTOOLS_") or name.lower() in Settings.model_fields, name
        assert "DATABASE_URL" not in variables
        assert "SILICONFLOW_API_KEY" not in variables
        assert "C2PA_PRIVATE_KEY" not in variables
        assert "DATABASE_URL_PARAMETER" in variables
        for name in ("BUCKET_NAME", "QUEUE_URL", "DLQ_URL", "POWERTOOLS_SERVICE_NAME"):
            assert name in variables
        for name in ("VISIBILITY_TIMEOUT_SECONDS", "MAX_RECEIVE_COUNT", "WORKER_TIMEOUT_SECONDS"):
            assert name in variables
    assert "SILICONFLOW_API_KEY_PARAMETER" in environment(template, "WorkerFunction")
    worker = environment(template, "WorkerFunction")
    # Content Credentials: off unless the ContentCredentials parameter says "on".
    assert worker["C2PA_ENABLED"] == {"Fn::If": ["SignsContentCredentials", "true", "false"]}
    assert template["Parameters"]["ContentCredentials"]["Default"] == "off"
    assert {"C2PA_PRIVATE_KEY_PARAMETER", "C2PA_CERTIFICATE_CHAIN_PARAMETER"} <= set(worker)


# --- Permissions (every role's grants, as deployed: test_template_iam.py) -----------------


def test_created_originals_reach_the_ingest_queue_and_only_s3_of_the_account_sends_there(
    resources: dict[str, Any],
) -> None:
    bucket = resources["PhotoBucket"]
    [notification] = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert notification["Event"] == "s3:ObjectCreated:*"
    [rule] = notification["Filter"]["S3Key"]["Rules"]
    assert rule == {"Name": "prefix", "Value": {"Ref": "OriginalsPrefix"}}
    assert bucket["DependsOn"] == "IngestQueuePolicy"
    [statement] = properties(resources, "IngestQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }
    redrive = properties(resources, "IngestQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    alarm = properties(resources, "IngestDeadLetterQueueNotEmptyAlarm")
    [watched] = alarm["Dimensions"]
    assert watched["Value"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "QueueName"]}
    # Browsers of the API's CORS origins may PUT there, and only PUT.
    has_cors, rules, none = bucket["Properties"]["CorsConfiguration"]["Fn::If"]
    assert (has_cors, none) == ("HasCors", {"Ref": "AWS::NoValue"})
    [rule] = rules["CorsRules"]
    assert rule["AllowedMethods"] == ["PUT"]
    assert rule["AllowedOrigins"] == {"Ref": "CorsAllowedOrigins"}


def test_secrets_are_readable_only_by_name(resources: dict[str, Any]) -> None:
    """Which roles may read them: test_template_iam.py's table."""
    for name, parameter in [
        ("DatabaseUrlReadPolicy", "DatabaseUrlParameterName"),
        ("SiliconFlowApiKeyReadPolicy", "SiliconFlowApiKeyParameterName"),
    ]:
        (statement,) = properties(resources, name)["PolicyDocument"]["Statement"]
        assert statement["Action"] == "ssm:GetParameter"
        arn, variables = statement["Resource"]["Fn::Sub"]
        assert arn.endswith(":parameter${Name}")
        assert variables["Name"]["Fn::If"][1] == {"Ref": parameter}


# --- Alarms and outputs ----------------------------------------------------------------------


def alarm_on(resources: dict[str, Any], metric: str, dimension: Any) -> dict[str, Any]:
    alarm: dict[str, Any]
    (alarm,) = (
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"]["MetricName"] == metric
        and r["Properties"]["Dimensions"][0]["Value"] == dimension
    )
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    return alarm


def test_alarms_watch_the_dlq_the_worker_and_the_backlogs(resources: dict[str, Any]) -> None:
    dlq = {"Fn::GetAtt": ["RestoreDeadLetterQueue", "QueueName"]}
    dead = alarm_on(resources, "ApproximateNumberOfMessagesVisible", dlq)
    assert (dead["Threshold"], dead["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    errors = alarm_on(resources, "Errors", {"Ref": "WorkerFunction"})
    assert (errors["Threshold"], errors["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    queue = {"Fn::GetAtt": ["RestoreQueue", "QueueName"]}
    age = alarm_on(resources, "ApproximateAgeOfOldestMessage", queue)
    assert age["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}
    # Dead messages the DLQ handler cannot settle (per-record failures are not Lambda Errors).
    stuck = alarm_on(resources, "ApproximateAgeOfOldestMessage", dlq)
    assert stuck["Threshold"] > properties(resources, "RestoreDeadLetterQueue")["VisibilityTimeout"]


def test_alarm_email_is_subscribed_only_when_given(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


def test_outputs_name_the_api_the_bucket_the_queues_and_the_functions(
    template: dict[str, Any],
) -> None:
    outputs = set(template["Outputs"])
    assert {"ApiUrl", "BucketName", "QueueUrl", "DlqUrl"} <= outputs
    assert {f"{function}Name" for function in FUNCTIONS} <= outputs


# --- Events ----------------------------------------------------------------------------------


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@pytest.mark.parametrize("name", ["api_restore.json", "api_get_photo.json"])
def test_api_events_are_http_api_v2_events_of_a_template_route(name: str) -> None:
    event = APIGatewayProxyEventV2Model.model_validate(load_event(name))
    assert event.routeKey in ROUTES
    assert event.pathParameters is not None and "photo_id" in event.pathParameters
    authorizer = event.requestContext.authorizer
    assert authorizer is not None and authorizer.jwt is not None
    claims = authorizer.jwt.claims
    assert {"sub", "email", "aud", "role"} <= set(claims)
    assert claims["aud"] == "authenticated"


@pytest.mark.parametrize(
    ("name", "queue_suffix"), [("worker_sqs.json", "-restore"), ("dlq_sqs.json", "-restore-dlq")]
)
def test_sqs_events_carry_restore_messages_from_the_right_queue(
    name: str, queue_suffix: str
) -> None:
    event = SqsModel.model_validate(load_event(name))
    for record in event.Records:
        RestoreMessage.model_validate_json(str(record.body))
        assert record.eventSourceARN.endswith(queue_suffix)
        assert record.attributes.ApproximateReceiveCount


def test_the_ingest_event_is_an_s3_notification_of_an_original_from_the_ingest_queue() -> None:
    from aws_lambda_powertools.utilities.parser.models import S3Model

    event = SqsModel.model_validate(load_event("ingest_sqs.json"))
    for record in event.Records:
        assert record.eventSourceARN.endswith("-ingest")
        notification = S3Model.model_validate_json(str(record.body))
        [created] = notification.Records
        assert created.eventName.startswith("ObjectCreated:")
        assert created.s3.object is not None
        assert created.s3.object.key.startswith("originals/")


def test_sweeper_event_is_an_eventbridge_scheduled_event() -> None:
    event = EventBridgeModel.model_validate(load_event("sweeper_schedule.json"))
    assert event.detail_type == "Scheduled Event"
    assert event.source == "aws.events"


@pytest.mark.parametrize(
    ("alarm_name", "code"),
    [
        ("ProviderAuthFailedAlarm", "provider_auth_failed"),
        ("ProviderMisconfiguredAlarm", "provider_misconfigured"),
    ],
)
def test_the_configuration_alarms_watch_the_metrics_the_worker_emits(
    template: dict[str, Any], resources: dict[str, Any], alarm_name: str, code: str
) -> None:
    from photo_restore.errors import ProviderAuthFailed, ProviderMisconfigured

    assert code in {ProviderAuthFailed.code, ProviderMisconfigured.code}
    # test_pipeline checks the worker emits exactly this metric and dimension.
    alarm = properties(resources, alarm_name)
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["Namespace"] == globals_env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["MetricName"] == f"RestoreFailed_{code}"
    [dimension] = alarm["Dimensions"]
    assert dimension == {"Name": "service", "Value": "photo-restore-worker"}
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_image_transport_is_left_to_the_base_url_unless_a_deployment_chooses(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["ImageTransport"]
    assert parameter["Default"] == "" and set(parameter["AllowedValues"]) == {
        "",
        "presigned_url",
        "data_uri",
    }
    assert environment(template, "WorkerFunction")["IMAGE_TRANSPORT"] == {
        "Fn::If": ["HasImageTransport", {"Ref": "ImageTransport"}, {"Ref": "AWS::NoValue"}]
    }


def test_no_function_has_more_layers_than_lambda_takes(template: dict[str, Any]) -> None:
    """Lambda attaches at most five layers to a function (cfn-lint's E3032 says so too)."""
    for function, layers in function_layers(template).items():
        assert len(layers) <= 5, (function, layers)
