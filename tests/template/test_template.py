"""template.yaml against the README's Deploying section.

Two kinds of tests:
- the real template passes every check in template_checks and matches the
  contract other parts of the project rely on (names, environment, keys);
- a deliberately broken copy makes the matching check report the breakage,
  so each check is shown to be able to fail.
"""

import re
import tomllib
from pathlib import Path

import pytest

import template_checks as tc

REPO_ROOT = Path(__file__).resolve().parents[2]

FUNCTIONS = {
    # logical id: (binary, queue id, dlq id, fifo)
    "EmailFunction": ("email", "EmailQueue", "EmailDLQ", False),
    "ShippingFunction": ("shipping", "ShippingQueue", "ShippingDLQ", False),
    "InventoryFunction": ("inventory", "InventoryQueue", "InventoryDLQ", True),
    "PointsFunction": ("points", "PointsQueue", "PointsDLQ", True),
}

# Every function also reads SQS_KIT_BACKOFF and SQS_KIT_DEAD_LETTER (the library's retry control).
RETRY_ENVIRONMENT = {"SQS_KIT_BACKOFF", "SQS_KIT_DEAD_LETTER"}
ENVIRONMENT = {
    "EmailFunction": {"IDEMPOTENCY_TABLE", "LOG_LEVEL", "EMAIL_SENDER"} | RETRY_ENVIRONMENT,
    "ShippingFunction": {"IDEMPOTENCY_TABLE", "LOG_LEVEL", "SHIPMENTS_TABLE"} | RETRY_ENVIRONMENT,
    "InventoryFunction": {"IDEMPOTENCY_TABLE", "LOG_LEVEL", "STOCK_TABLE"} | RETRY_ENVIRONMENT,
    "PointsFunction": {"IDEMPOTENCY_TABLE", "LOG_LEVEL", "POINTS_TABLE", "POINTS_RATE"} | RETRY_ENVIRONMENT,
}

TABLE_KEYS = {
    "IdempotencyTable": [("id", "HASH")],
    "StockTable": [("pk", "HASH")],
    "ShipmentsTable": [("orderId", "HASH")],
    "PointsTable": [("customerId", "HASH"), ("sk", "RANGE")],
}


def res(template, name):
    return template["Resources"][name]


def props(template, name):
    return template["Resources"][name]["Properties"]


def statements_of(template, role):
    """The statements of a role's unconditional inline policies, in order."""
    return [
        st
        for policy in props(template, role)["Policies"]
        if "PolicyName" in policy
        for st in policy["PolicyDocument"]["Statement"]
    ]


def conditional_policy(template, role, condition):
    """The inline policy of a role that applies only when ``condition`` holds."""
    (policy,) = [
        p["Fn::If"][1] for p in props(template, role)["Policies"] if "Fn::If" in p and p["Fn::If"][0] == condition
    ]
    return policy


def problems_mentioning(problems, *words):
    return [p for p in problems if all(w in p for w in words)]


# ------------------------------------------------------------ the real template
@pytest.mark.parametrize("check", tc.ALL_CHECKS, ids=lambda c: c.__name__)
def test_template_passes(check, template):
    problems = check(template)
    assert problems == [], "\n".join(problems)


def test_every_function_is_paired_with_its_queue(template):
    found = {fname: qname for fname, _, _, qname, _, _ in tc.pairs(template)}
    assert found == {f: q for f, (_, q, _, _) in FUNCTIONS.items()}
    for fname, (binary, qname, dlq, fifo) in FUNCTIONS.items():
        assert tc.queue_is_fifo(res(template, qname)) is fifo
        assert tc.redrive_target(res(template, qname)) == dlq
        assert props(template, fname)["CodeUri"] == f"functions/{binary}"
        assert res(template, fname)["Metadata"]["BuildProperties"]["Binary"] == binary


def test_queue_names_derive_from_the_stack_name(template):
    for _, (binary, qname, dlq, fifo) in FUNCTIONS.items():
        suffix = ".fifo" if fifo else ""
        assert props(template, qname)["QueueName"] == {"Fn::Sub": f"${{AWS::StackName}}-{binary}{suffix}"}
        assert props(template, dlq)["QueueName"] == {"Fn::Sub": f"${{AWS::StackName}}-{binary}-dlq{suffix}"}


def test_function_environment_contract(template):
    for fname, wanted in ENVIRONMENT.items():
        env = tc.function_env(template, res(template, fname))
        assert set(env) == wanted, fname
    assert template["Parameters"]["PointsRate"]["Default"] == "0.01"
    assert template["Parameters"]["LogLevel"]["Default"] == "INFO"


def test_table_keys_and_ttl(template):
    for table, keys in TABLE_KEYS.items():
        schema = props(template, table)["KeySchema"]
        assert [(k["AttributeName"], k["KeyType"]) for k in schema] == keys
        types = {a["AttributeName"]: a["AttributeType"] for a in props(template, table)["AttributeDefinitions"]}
        assert types == {name: "S" for name, _ in keys}
    assert props(template, "IdempotencyTable")["TimeToLiveSpecification"] == {
        "AttributeName": "expiration",
        "Enabled": True,
    }


def test_visibility_numbers_sit_side_by_side(template):
    rows = template["Mappings"]["FunctionSettings"]
    assert set(rows) == {binary for binary, _, _, _ in FUNCTIONS.values()}
    for binary, _, _, fifo in FUNCTIONS.values():
        row = rows[binary]
        assert row["VisibilityTimeout"] >= 6 * row["Timeout"] + row["BatchingWindow"]
        if fifo:
            assert row["BatchingWindow"] == 0


def test_alarm_email_is_required_and_always_subscribed(template):
    email = template["Parameters"]["AlarmEmail"]
    assert "Default" not in email  # the first deploy must be given an address
    assert not re.fullmatch(email["AllowedPattern"], "")
    assert re.fullmatch(email["AllowedPattern"], "oncall@example.com")
    sub = res(template, "AlarmEmailSubscription")
    assert "Condition" not in sub
    assert props(template, "AlarmEmailSubscription") | {"Metadata": None} == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
        "Metadata": None,
    }
    # The deploy output says where alarms go, and that the address must confirm.
    assert template["Outputs"]["AlarmEmail"]["Value"] == {"Ref": "AlarmEmail"}
    assert "reach nobody" in template["Outputs"]["AlarmEmail"]["Description"]


IDEMPOTENCY_ACTIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"}
TABLE_ACTIONS = {
    "EmailFunction": {"IdempotencyTable": IDEMPOTENCY_ACTIONS},
    "ShippingFunction": {
        "IdempotencyTable": IDEMPOTENCY_ACTIONS,
        "ShipmentsTable": {"GetItem", "PutItem", "UpdateItem", "ConditionCheckItem"},
    },
    "InventoryFunction": {
        "IdempotencyTable": IDEMPOTENCY_ACTIONS,
        "StockTable": {"GetItem", "PutItem", "UpdateItem", "ConditionCheckItem"},
    },
    "PointsFunction": {
        "IdempotencyTable": IDEMPOTENCY_ACTIONS,
        "PointsTable": {"GetItem", "PutItem", "UpdateItem", "Query", "ConditionCheckItem"},
    },
}


def test_function_permissions_contract(template):
    """Exactly what the functions' code needs (the Rust side relies on it)."""
    for fname, wanted in TABLE_ACTIONS.items():
        grants = tc.granted_actions(template, fname)
        tables = {k: v for k, v in grants.items() if k in tc.resources(template, "AWS::DynamoDB::Table")}
        assert tables == {t: {f"dynamodb:{a.lower()}" for a in acts} for t, acts in wanted.items()}, fname
        _, queue, dlq, _ = FUNCTIONS[fname]
        # With the defaults (backoff and dead-letter forwarding off): polling only, nothing on the DLQ.
        assert grants[queue] == tc.SQS_POLLER_ACTIONS, fname
        assert dlq not in grants, fname
    ses = {k: v for k, v in tc.granted_actions(template, "EmailFunction").items() if ":ses:" in k}
    assert ses == {
        "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesIdentity}": {"ses:sendemail"}
    }


def test_retry_control_is_off_by_default_and_wired_per_function(template):
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = {name for group in groups for name in group["Parameters"]}
    for fname, (_, _, dlq, _) in FUNCTIONS.items():
        backoff, dead_letter = tc.retry_parameters(fname)
        assert template["Parameters"][backoff]["Default"] == "off"
        assert template["Parameters"][dead_letter]["Default"] == "off"
        assert {backoff, dead_letter} <= grouped, fname
        env = tc.function_env(template, res(template, fname))
        assert env["SQS_KIT_BACKOFF"] == {"Ref": backoff}
        assert env["SQS_KIT_DEAD_LETTER"] == {"Fn::If": [f"{dead_letter}On", {"Ref": dlq}, "off"]}


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_retry_permissions_follow_the_switches(template, fname):
    _, queue, dlq, _ = FUNCTIONS[fname]
    backoff, dead_letter = tc.retry_parameters(fname)
    spec = "base=10,cap=600,jitter=none"
    grants = tc.granted_actions(template, fname, {backoff: spec})
    assert grants[queue] == tc.SQS_POLLER_ACTIONS | {"sqs:changemessagevisibility"}
    assert dlq not in grants
    grants = tc.granted_actions(template, fname, {dead_letter: "on"})
    assert grants[queue] == tc.SQS_POLLER_ACTIONS
    assert grants[dlq] == {"sqs:sendmessage"}
    grants = tc.granted_actions(template, fname, {backoff: spec, dead_letter: "on"})
    assert grants[queue] == tc.SQS_POLLER_ACTIONS | {"sqs:changemessagevisibility"}
    assert grants[dlq] == {"sqs:sendmessage"}
    # Another function's switches grant this one nothing.
    other = next(f for f in FUNCTIONS if f != fname)
    other_backoff, other_dead_letter = tc.retry_parameters(other)
    grants = tc.granted_actions(template, fname, {other_backoff: spec, other_dead_letter: "on"})
    assert grants[queue] == tc.SQS_POLLER_ACTIONS
    assert dlq not in grants


BACKOFF_ACCEPTED = ["off", "base=1,cap=1", "base=5,cap=300", "base=30,cap=42000,jitter=full", "base=9999,cap=10000,jitter=none"]
BACKOFF_REJECTED = [
    "", "OFF", "on", "base=0,cap=10", "base=1,cap=42001", "base=1,cap=99999", "base=01,cap=10", "cap=10,base=1",
    "base=1", "base=1,cap=10,jitter=half", "base=1,cap=10,", "base=1.5,cap=10", " base=1,cap=10", "base=1, cap=10",
]


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_backoff_parameter_allows_what_the_library_accepts(template, fname):
    pattern = template["Parameters"][tc.retry_parameters(fname)[0]]["AllowedPattern"]
    assert pattern == tc.BACKOFF_PATTERN
    for value in BACKOFF_ACCEPTED:
        assert re.fullmatch(pattern, value), value
    for value in BACKOFF_REJECTED:
        assert not re.fullmatch(pattern, value), value
    # Every whole second from 1 to 42000, and nothing above.
    assert all(re.fullmatch(pattern, f"base={n},cap={n}") for n in range(1, 42001))
    assert not any(re.fullmatch(pattern, f"base=1,cap={n}") for n in range(42001, 100000))


def test_samconfig_matches_the_template(template):
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    assert config["default"]["global"]["parameters"]["stack_name"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"  # roles without fixed names
    assert deploy["resolve_s3"] is True
    overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])
    params = template["Parameters"]
    assert set(overrides) <= set(params), "samconfig.toml overrides unknown parameters"
    # Every required parameter has a value here but the alarm e-mail, which
    # `sam deploy --guided` asks for (a placeholder would page nobody).
    assert {n for n, p in params.items() if "Default" not in p} - set(overrides) == {"AlarmEmail"}
    assert len(config["default"]["global"]["parameters"]["stack_name"]) <= tc.STACK_NAME_LIMIT
    for name, raw in overrides.items():
        value = raw.strip('"')
        spec = params[name]
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), name
        if spec["Type"] == "Number":
            number = float(value)
            assert spec.get("MinValue", number) <= number <= spec.get("MaxValue", number), name


# ------------------------------------------------------------ broken copies
def test_missing_redrive_policy_is_reported(template):
    del props(template, "EmailQueue")["RedrivePolicy"]
    assert problems_mentioning(tc.check_redrive(template), "EmailQueue", "no RedrivePolicy")
    # ...and the DLQ left without a source is no longer a DLQ: no stray queue goes unnoticed.
    assert problems_mentioning(tc.check_pairs_exist(template), "EmailDLQ")


def test_fifo_queue_with_standard_dlq_is_reported(template):
    props(template, "InventoryQueue")["RedrivePolicy"]["deadLetterTargetArn"] = {"Fn::GetAtt": ["EmailDLQ", "Arn"]}
    assert problems_mentioning(tc.check_redrive(template), "InventoryQueue is a FIFO queue", "EmailDLQ")


def test_literal_max_receive_count_is_reported(template):
    props(template, "PointsQueue")["RedrivePolicy"]["maxReceiveCount"] = 3
    assert problems_mentioning(tc.check_redrive(template), "PointsQueue", "maxReceiveCount")


def test_short_dlq_retention_is_reported(template):
    props(template, "ShippingDLQ")["MessageRetentionPeriod"] = 345600
    assert problems_mentioning(tc.check_redrive(template), "ShippingDLQ", "MessageRetentionPeriod")


@pytest.mark.parametrize(
    "allow",
    [
        {"redrivePermission": "allowAll"},
        {
            "redrivePermission": "byQueue",
            "sourceQueueArns": [
                {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-shipping"}
            ],
        },
    ],
    ids=["allowAll", "names-another-queue"],
)
def test_loose_redrive_allow_policy_is_reported(template, allow):
    props(template, "EmailDLQ")["RedriveAllowPolicy"] = allow
    assert problems_mentioning(tc.check_redrive(template), "EmailDLQ", "RedriveAllowPolicy")


def test_short_visibility_timeout_is_reported(template):
    template["Mappings"]["FunctionSettings"]["email"]["VisibilityTimeout"] = 100
    assert problems_mentioning(tc.check_visibility(template), "EmailQueue", "VisibilityTimeout 100")


def test_longer_function_timeout_is_reported(template):
    template["Mappings"]["FunctionSettings"]["points"]["Timeout"] = 60
    assert problems_mentioning(tc.check_visibility(template), "PointsQueue", "timeout 60")


def test_batching_window_beyond_the_mapping_is_reported(template):
    template["Parameters"]["BatchingWindowSeconds"]["MaxValue"] = 300
    problems = tc.check_visibility(template)
    assert problems_mentioning(problems, "EmailFunction", "can reach 300")
    assert problems_mentioning(problems, "EmailQueue", "VisibilityTimeout 200")


def test_unbounded_batching_window_is_reported(template):
    del template["Parameters"]["BatchingWindowSeconds"]["MaxValue"]
    assert problems_mentioning(tc.check_visibility(template), "ShippingFunction", "no upper bound")


def test_visibility_timeout_outside_the_mapping_is_reported(template):
    props(template, "ShippingQueue")["VisibilityTimeout"] = 900
    assert problems_mentioning(tc.check_visibility(template), "ShippingQueue", "one mapping row")


def test_missing_report_batch_item_failures_is_reported(template):
    del props(template, "ShippingFunction")["Events"]["Orders"]["Properties"]["FunctionResponseTypes"]
    assert problems_mentioning(tc.check_event_settings(template), "ShippingFunction", "ReportBatchItemFailures")


def test_batching_window_on_fifo_is_reported(template):
    event = props(template, "InventoryFunction")["Events"]["Orders"]["Properties"]
    event["MaximumBatchingWindowInSeconds"] = {"Ref": "BatchingWindowSeconds"}
    assert problems_mentioning(tc.check_event_settings(template), "InventoryFunction", "FIFO")


def test_fifo_batch_size_over_ten_is_reported(template):
    template["Parameters"]["FifoBatchSize"]["MaxValue"] = 100
    problems = tc.check_event_settings(template)
    assert problems_mentioning(problems, "InventoryFunction", "at most 10")
    assert problems_mentioning(problems, "PointsFunction", "at most 10")


def test_max_concurrency_out_of_range_is_reported(template):
    template["Parameters"]["MaxConcurrency"]["MinValue"] = 1
    assert problems_mentioning(tc.check_event_settings(template), "EmailFunction", "MaximumConcurrency")
    del props(template, "PointsFunction")["Events"]["Orders"]["Properties"]["ScalingConfig"]
    assert problems_mentioning(tc.check_event_settings(template), "PointsFunction", "MaximumConcurrency is missing")


def test_wrong_build_settings_are_reported(template):
    props(template, "PointsFunction")["CodeUri"] = "."
    template["Globals"]["Function"]["Architectures"] = ["x86_64"]
    problems = tc.check_function_build(template)
    assert problems_mentioning(problems, "PointsFunction", "CodeUri")
    assert len(problems_mentioning(problems, "Architectures")) == 4


def test_breaching_missing_data_is_reported(template):
    props(template, "InventoryQueueAgeAlarm")["TreatMissingData"] = "breaching"
    assert problems_mentioning(tc.check_alarms(template), "InventoryQueueAgeAlarm", "notBreaching")


def test_missing_function_alarms_are_reported(template):
    del template["Resources"]["ShippingThrottlesAlarm"]
    del template["Resources"]["EmailErrorsAlarm"]
    del template["Resources"]["PointsQueueAgeAlarm"]
    problems = tc.check_alarms(template)
    assert problems_mentioning(problems, "ShippingFunction", "Throttles")
    assert problems_mentioning(problems, "EmailFunction", "Errors")
    assert problems_mentioning(problems, "PointsQueue", "ApproximateAgeOfOldestMessage")


def test_alarm_topic_key_without_cloudwatch_is_reported(template):
    policy = props(template, "TopicKey")["KeyPolicy"]
    policy["Statement"] = [st for st in policy["Statement"] if "Service" not in st["Principal"]]
    assert problems_mentioning(tc.check_alarms(template), "AlarmTopic", "cloudwatch.amazonaws.com")


def test_missing_encryption_is_reported(template):
    del props(template, "PointsDLQ")["SqsManagedSseEnabled"]
    del props(template, "OrdersTopic")["KmsMasterKeyId"]
    del props(template, "StockTable")["SSESpecification"]
    props(template, "ShipmentsTable")["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] = False
    props(template, "PointsTable")["BillingMode"] = "PROVISIONED"
    problems = tc.check_encryption(template)
    assert problems_mentioning(problems, "PointsDLQ", "not encrypted")
    assert problems_mentioning(problems, "OrdersTopic", "not encrypted")
    assert problems_mentioning(problems, "StockTable", "SSEEnabled")
    assert problems_mentioning(problems, "ShipmentsTable", "point-in-time")
    assert problems_mentioning(problems, "PointsTable", "PAY_PER_REQUEST")


def test_fan_out_breakages_are_reported(template):
    props(template, "InventorySubscription")["RawMessageDelivery"] = False
    props(template, "OrdersTopic")["ContentBasedDeduplication"] = True
    del props(template, "PointsQueuePolicy")["PolicyDocument"]["Statement"][0]["Condition"]
    problems = tc.check_fan_out(template)
    assert problems_mentioning(problems, "InventorySubscription", "RawMessageDelivery")
    assert problems_mentioning(problems, "OrdersTopic", "deduplication")
    assert problems_mentioning(problems, "PointsQueue", "aws:SourceArn")


def test_star_resource_is_reported(template):
    statements_of(template, "InventoryRole")[1]["Resource"] = "*"
    assert problems_mentioning(tc.check_least_privilege(template), "InventoryFunction", "Resource '*'", "dynamodb:getitem")


def test_wildcard_action_is_reported(template):
    statements_of(template, "PointsRole")[2]["Action"] = "dynamodb:*"
    assert problems_mentioning(tc.check_least_privilege(template), "PointsFunction", "wildcard action")


def test_wildcard_in_an_arn_is_reported(template):
    statements_of(template, "EmailRole")[2]["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"
    }
    assert problems_mentioning(tc.check_least_privilege(template), "EmailFunction", "not a named resource")


def test_another_queue_or_table_is_reported(template):
    statements_of(template, "ShippingRole")[0]["Resource"] = {"Fn::GetAtt": ["EmailQueue", "Arn"]}
    statements_of(template, "ShippingRole")[2]["Resource"] = {"Fn::GetAtt": ["PointsTable", "Arn"]}
    problems = tc.check_least_privilege(template)
    assert problems_mentioning(problems, "ShippingFunction", "own queue", "EmailQueue")
    assert problems_mentioning(problems, "ShippingFunction", "DynamoDB", "PointsTable")


def test_star_on_the_log_group_is_reported(template):
    statements_of(template, "EmailRole")[-1]["Resource"] = "*"
    assert problems_mentioning(tc.check_least_privilege(template), "EmailFunction", "Resource '*'", "logs:")


def test_another_functions_log_group_is_reported(template):
    statements_of(template, "EmailRole")[-1]["Resource"] = {"Fn::GetAtt": ["PointsLogGroup", "Arn"]}
    assert problems_mentioning(tc.check_least_privilege(template), "EmailFunction", "own log group")


def test_sam_generated_role_is_reported(template):
    function = props(template, "EmailFunction")
    del function["Role"]
    function["Policies"] = [{"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["EmailQueue", "QueueName"]}}}]
    assert problems_mentioning(tc.check_least_privilege(template), "EmailFunction", "AWSLambdaSQSQueueExecutionRole")


def test_role_that_cannot_poll_is_reported(template):
    statements_of(template, "InventoryRole")[0]["Action"] = ["sqs:ReceiveMessage", "sqs:GetQueueAttributes"]
    assert problems_mentioning(tc.check_least_privilege(template), "InventoryFunction", "sqs:deletemessage")


def test_managed_policy_is_reported(template):
    props(template, "PointsRole")["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
    ]
    assert problems_mentioning(tc.check_least_privilege(template), "PointsFunction", "ManagedPolicyArns")


def test_unconditional_backoff_permission_is_reported(template):
    # The policy taken out of its Fn::If: granted with backoff off.
    policies = props(template, "EmailRole")["Policies"]
    policies[:] = [p["Fn::If"][1] if "Fn::If" in p and p["Fn::If"][0] == "EmailBackoffOn" else p for p in policies]
    problems = tc.check_retry_control(template)
    assert problems_mentioning(problems, "EmailFunction", "EmailBackoff=off", "sqs:changemessagevisibility", "EmailQueue.Arn")
    assert not problems_mentioning(problems, "ShippingFunction")


def test_change_visibility_for_polling_is_reported(template):
    # What the template granted before issue 14: ChangeMessageVisibility with the poller actions.
    statements_of(template, "InventoryRole")[0]["Action"].append("sqs:ChangeMessageVisibility")
    problems = tc.check_retry_control(template)
    assert problems_mentioning(problems, "InventoryFunction", "InventoryBackoff=off", "sqs:changemessagevisibility")


def test_unconditional_dead_letter_permission_and_environment_are_reported(template):
    policies = props(template, "PointsRole")["Policies"]
    policies[:] = [p["Fn::If"][1] if "Fn::If" in p and p["Fn::If"][0] == "PointsDeadLetterOn" else p for p in policies]
    props(template, "PointsFunction")["Environment"]["Variables"]["SQS_KIT_DEAD_LETTER"] = {"Ref": "PointsDLQ"}
    problems = tc.check_retry_control(template)
    assert problems_mentioning(problems, "PointsFunction", "PointsDeadLetter=off", "sqs:sendmessage", "PointsDLQ.Arn")
    assert problems_mentioning(problems, "PointsFunction", "PointsDeadLetter=off", "SQS_KIT_DEAD_LETTER", "PointsDLQ")


def test_dead_letter_forwarding_without_its_url_is_reported(template):
    props(template, "EmailFunction")["Environment"]["Variables"]["SQS_KIT_DEAD_LETTER"] = "redrive-policy"
    problems = tc.check_retry_control(template)
    assert problems_mentioning(problems, "EmailFunction", "EmailDeadLetter=on", "SQS_KIT_DEAD_LETTER", "'redrive-policy'")


def test_permission_under_another_functions_condition_is_reported(template):
    conditional_policy(template, "ShippingRole", "ShippingBackoffOn")  # it exists...
    for policy in props(template, "ShippingRole")["Policies"]:
        if "Fn::If" in policy and policy["Fn::If"][0] == "ShippingBackoffOn":
            policy["Fn::If"][0] = "EmailBackoffOn"  # ...and now follows the email function's switch
    problems = tc.check_retry_control(template)
    assert problems_mentioning(problems, "ShippingFunction", "ShippingBackoff=off", "the other functions' on")
    assert problems_mentioning(problems, "ShippingFunction", "ShippingBackoff=base=1,cap=900,", "granted on nothing")


def test_forwarding_to_the_wrong_queue_is_reported(template):
    statement = conditional_policy(template, "EmailRole", "EmailDeadLetterOn")["PolicyDocument"]["Statement"][0]
    statement["Resource"] = {"Fn::GetAtt": ["EmailQueue", "Arn"]}
    assert problems_mentioning(tc.check_retry_control(template), "EmailFunction", "sqs:sendmessage", "want EmailDLQ.Arn")
    statement["Resource"] = {"Fn::GetAtt": ["ShippingDLQ", "Arn"]}
    assert problems_mentioning(tc.check_least_privilege(template), "EmailFunction", "own DLQ", "ShippingDLQ")
    # Its own DLQ, but more than sending to it.
    statement["Resource"] = {"Fn::GetAtt": ["EmailDLQ", "Arn"]}
    statement["Action"] = ["sqs:SendMessage", "sqs:ReceiveMessage"]
    assert problems_mentioning(tc.check_least_privilege(template), "EmailFunction", "EmailDLQ", "sqs:receivemessage")


def test_retry_parameters_that_are_on_by_default_or_loose_are_reported(template):
    template["Parameters"]["InventoryBackoff"]["Default"] = "base=1,cap=60"
    template["Parameters"]["ShippingBackoff"]["AllowedPattern"] = ".*"
    template["Parameters"]["PointsDeadLetter"]["AllowedValues"] = ["off", "on", "redrive-policy"]
    del template["Parameters"]["EmailDeadLetter"]
    problems = tc.check_retry_control(template)
    assert problems_mentioning(problems, "InventoryBackoff", "default to off")
    assert problems_mentioning(problems, "ShippingBackoff", "AllowedPattern")
    assert problems_mentioning(problems, "PointsDeadLetter", "only off and on")
    assert problems_mentioning(problems, "EmailFunction", "EmailDeadLetter")


def test_missing_output_is_reported(template):
    del template["Outputs"]["InventoryDLQUrl"]
    assert problems_mentioning(tc.check_outputs(template), "InventoryDLQ")


# ------------------------------------------------------------ checkov skips
TEMPLATE_TEXT = (REPO_ROOT / "template.yaml").read_text()


def test_checkov_skips_are_only_metadata_with_reasons(template):
    # checkov also honours `# checkov:skip=ID:reason` comments in a resource's
    # lines, which the parsed template cannot show: keep every skip in Metadata.
    assert not re.search(r"(checkov|bridgecrew):skip=", TEMPLATE_TEXT, re.IGNORECASE)
    for name, resource in template["Resources"].items():
        for skip in tc.checkov_skips(resource):
            assert skip["id"] in tc.CHECKOV_SKIPS, name
            assert skip["comment"].strip() and "\n" not in skip["comment"].strip(), name


def test_checkov_skip_without_comment_is_reported(template):
    res(template, "EmailQueue")["Metadata"]["checkov"]["skip"][0]["comment"] = " "
    assert problems_mentioning(tc.check_checkov_skips(template), "EmailQueue", "CKV_AWS_27", "comment")


def test_unlisted_checkov_skip_is_reported(template):
    res(template, "EmailRole")["Metadata"] = {
        "checkov": {"skip": [{"id": "CKV_AWS_111", "comment": "write access without constraints is fine"}]}
    }
    assert problems_mentioning(tc.check_checkov_skips(template), "EmailRole", "CKV_AWS_111", "not an accepted skip")


def test_checkov_skip_on_the_wrong_resource_type_is_reported(template):
    res(template, "StockTable")["Metadata"]["checkov"]["skip"].append({"id": "CKV_AWS_27", "comment": "x"})
    assert problems_mentioning(tc.check_checkov_skips(template), "StockTable", "CKV_AWS_27", "AWS::SQS::Queue")


def test_bridgecrew_skip_is_reported(template):
    res(template, "PointsTable")["Metadata"]["bridgecrew"] = {"skip": [{"id": "CKV_AWS_28", "comment": "x"}]}
    assert problems_mentioning(tc.check_checkov_skips(template), "PointsTable", "Metadata.bridgecrew")


def test_sqs_encryption_skip_on_an_unencrypted_queue_is_reported(template):
    del props(template, "InventoryDLQ")["SqsManagedSseEnabled"]
    props(template, "ShipmentsTable")["SSESpecification"]["SSEEnabled"] = False
    problems = tc.check_checkov_skips(template)
    assert problems_mentioning(problems, "InventoryDLQ", "CKV_AWS_27", "SqsManagedSseEnabled")
    assert problems_mentioning(problems, "ShipmentsTable", "CKV_AWS_119", "SSEEnabled")


def test_function_skips_that_no_longer_hold_are_reported(template):
    function = props(template, "ShippingFunction")
    function["Events"]["Retry"] = {"Type": "SNS", "Properties": {"Topic": {"Ref": "OrdersTopic"}}}
    del props(template, "PointsFunction")["Events"]["Orders"]["Properties"]["ScalingConfig"]
    props(template, "EmailFunction")["Environment"]["Variables"]["SMTP_PASSWORD"] = "hunter2"
    problems = tc.check_checkov_skips(template)
    assert problems_mentioning(problems, "ShippingFunction", "CKV_AWS_116", "only SQS events")
    assert problems_mentioning(problems, "PointsFunction", "CKV_AWS_115", "MaximumConcurrency")
    assert problems_mentioning(problems, "EmailFunction", "CKV_AWS_173", "secret")


# ------------------------------------------------------------ issue 15: alarms
STACK = "${AWS::StackName}"
FUNCTION_ALARMS = {
    # logical id suffix: (alarm name suffix, OKActions)
    "ErrorsAlarm": ("errors", True),
    "ThrottlesAlarm": ("throttles", True),
    "PermanentFailuresAlarm": ("permanent-failures", False),
    "TransientFailureRateAlarm": ("transient-failure-rate", True),
    "DurationAlarm": ("duration", True),
    "QueueAgeAlarm": ("queue-age", True),
    "DLQNewMessagesAlarm": ("dlq-new-messages", False),
    "DLQAgeAlarm": ("dlq-age", True),
}
OTHER_ALARMS = {
    "DeliveryDLQNewMessagesAlarm": ("delivery-dlq-new-messages", False),
    "DeliveryDLQAgeAlarm": ("delivery-dlq-age", True),
    "OrdersTopicRedriveFailuresAlarm": ("orders-topic-redrive-failures", False),
}


def expected_alarms():
    wanted = dict(OTHER_ALARMS)
    for fname, (binary, _, _, _) in FUNCTIONS.items():
        prefix = fname.removesuffix("Function")
        for suffix, (name, ok) in FUNCTION_ALARMS.items():
            wanted[prefix + suffix] = (f"{binary}-{name}", ok)
    return wanted


DEPLOY_MD = (REPO_ROOT / "docs" / "deploy.md").read_text()


def test_every_alarm_is_named_described_and_in_the_runbook(template):
    """The names `sqs-kit local alarms` prints and the runbook entries they lead to."""
    wanted = expected_alarms()
    assert set(tc.alarms(template)) == set(wanted)
    for alarm, (name, ok) in wanted.items():
        p = props(template, alarm)
        assert p["AlarmName"] == {"Fn::Sub": f"{STACK}-{name}"}, alarm
        assert p["AlarmDescription"].endswith(f"(docs/deploy.md, runbook {name}).") or f"runbook {name})." in p["AlarmDescription"], alarm
        assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}], alarm
        assert ("OKActions" in p) is ok, alarm
        # One runbook entry per alarm, under its name.
        assert re.search(rf"^#### `<stack>-{re.escape(name)}`$", DEPLOY_MD, re.MULTILINE), f"docs/deploy.md has no entry for {name}"
    assert len(re.findall(r"^#### `<stack>-", DEPLOY_MD, re.MULTILINE)) == len(wanted)


def metric_ids(template, alarm):
    return {m["MetricStat"]["Metric"]["MetricName"]: m for m in props(template, alarm)["Metrics"] if "MetricStat" in m}


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_failed_record_alarms_read_the_embedded_metrics(template, fname):
    prefix = fname.removesuffix("Function")
    permanent = props(template, f"{prefix}PermanentFailuresAlarm")
    metrics = metric_ids(template, f"{prefix}PermanentFailuresAlarm")
    assert set(metrics) == {"RecordsFailedPermanent", "RecordsDeadLettered"}
    for m in metrics.values():
        assert m["MetricStat"] == {
            "Metric": {"Namespace": "SqsKit", "MetricName": m["MetricStat"]["Metric"]["MetricName"],
                       "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": fname}}]},
            "Period": 60,
            "Stat": "Sum",
        }
    assert tc.math_expression(res(template, f"{prefix}PermanentFailuresAlarm")) == "FILL(permanent, 0) + FILL(dead_lettered, 0)"
    assert (permanent["EvaluationPeriods"], permanent["DatapointsToAlarm"], permanent["Threshold"]) == (1, 1, 0)
    assert permanent["ComparisonOperator"] == "GreaterThanThreshold"

    rate = props(template, f"{prefix}TransientFailureRateAlarm")
    assert set(metric_ids(template, f"{prefix}TransientFailureRateAlarm")) == set(tc.RECORD_COUNTS)
    assert tc.transient_rate_alarms(template, fname) == [f"{prefix}TransientFailureRateAlarm"]
    assert (rate["EvaluationPeriods"], rate["DatapointsToAlarm"]) == (5, 3)
    assert rate["Threshold"] == {"Ref": "TransientFailureRatePercent"}
    assert template["Parameters"]["TransientFailureRatePercent"]["Default"] == 10


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_duration_alarm_fires_at_80_percent_of_the_timeout(template, fname):
    binary, _, _, _ = FUNCTIONS[fname]
    p = props(template, f"{fname.removesuffix('Function')}DurationAlarm")
    row = template["Mappings"]["FunctionSettings"][binary]
    assert (p["Namespace"], p["MetricName"], p["ExtendedStatistic"]) == ("AWS/Lambda", "Duration", "p99")
    assert p["Threshold"] == {"Fn::FindInMap": ["FunctionSettings", binary, "DurationAlarm"]}
    assert row["DurationAlarm"] == 0.8 * row["Timeout"] * 1000


def test_dlq_alarms_fire_on_every_new_dead_letter_and_before_expiry(template):
    dlqs = {dlq: f"{binary}-dlq" for _, (binary, _, dlq, _) in FUNCTIONS.items()} | {"DeliveryDLQ": "delivery-dlq"}
    age_parameter = template["Parameters"]["DLQAgeAlarmSeconds"]
    assert age_parameter["Default"] == 10 * 24 * 3600
    assert age_parameter["MaxValue"] <= tc.DLQ_RETENTION_SECONDS - 24 * 3600
    for dlq in dlqs:
        prefix = dlq.removesuffix("DLQ")
        new = props(template, f"{prefix}DLQNewMessagesAlarm")
        (depth,) = metric_ids(template, f"{prefix}DLQNewMessagesAlarm").values()
        assert depth["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
        assert tc.math_expression(res(template, f"{prefix}DLQNewMessagesAlarm")) == f"DIFF(FILL({depth['Id']}, 0))"
        assert (new["EvaluationPeriods"], new["DatapointsToAlarm"], new["Threshold"]) == (2, 1, 0)
        age = props(template, f"{prefix}DLQAgeAlarm")
        assert (age["MetricName"], age["Threshold"]) == ("ApproximateAgeOfOldestMessage", {"Ref": "DLQAgeAlarmSeconds"})
    # The old "depth > 0" alarms are gone: they stayed in ALARM through every later dead letter.
    assert not [n for n, a in tc.alarms_on(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible")]


def test_lost_fan_out_deliveries_alarm(template):
    p = props(template, "OrdersTopicRedriveFailuresAlarm")
    assert (p["Namespace"], p["MetricName"], p["Statistic"]) == ("AWS/SNS", "NumberOfNotificationsFailedToRedriveToDlq", "Sum")
    assert p["Dimensions"] == [{"Name": "TopicName", "Value": {"Fn::GetAtt": ["OrdersTopic", "TopicName"]}}]


@pytest.mark.parametrize(
    "expression, ids",
    [
        ("FILL(a, 0) + FILL(b, 0)", {"a", "b"}),
        ("DIFF(FILL(depth, 0))", {"depth"}),
        ("100 * t / (a + t)", {"a", "t"}),
        ("IF(a >= 1, MAX([a, b - 2.5]), 0)", {"a", "b"}),
    ],
)
def test_the_local_evaluator_grammar_accepts(expression, ids):
    assert tc.expression_ids(expression) == ids


@pytest.mark.parametrize(
    "expression",
    ["RATE(a)", "FILL(a, 1)", "a ^ 2", "IF(a, b, c)", "IF(a == 1, b, c)", "MAX(a)", "a +", "(a", "a b", "SUM([a, b])", "METRICS()", "A1"],
)
def test_the_local_evaluator_grammar_refuses(expression):
    with pytest.raises(tc.ExpressionError):
        tc.expression_ids(expression)


# ------------------------------------------------------------ issue 15: rollouts, logs, data, limits
def sam_transform(template):
    """The template as SAM turns it into CloudFormation (offline: CodeUri as an S3 location)."""
    from samtranslator.translator.transform import transform

    for function in tc.resources(template, "AWS::Serverless::Function").values():
        function["Properties"]["CodeUri"] = "s3://bucket/" + function["Properties"]["CodeUri"]

    class NoManagedPolicies:
        def load(self):
            return {}

    parameters = {"EmailSender": "orders@example.com", "SesIdentity": "example.com", "AlarmEmail": "oncall@example.com"}
    return transform(template, parameters, NoManagedPolicies())["Resources"]


def test_event_source_mappings_invoke_the_alias_and_roll_back_on_alarms(template, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    resources = sam_transform(template)
    for fname in FUNCTIONS:
        prefix = fname.removesuffix("Function")
        alias = f"{fname}Aliaslive"
        assert resources[alias]["Type"] == "AWS::Lambda::Alias"
        (mapping,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping" and r["Properties"]["FunctionName"] == {"Ref": alias}]
        assert mapping["Properties"]["MetricsConfig"] == {"Metrics": ["EventCount"]}
        group = resources[f"{fname}DeploymentGroup"]["Properties"]
        assert group["AlarmConfiguration"]["Alarms"] == [
            {"Name": {"Ref": f"{prefix}{a}"}} for a in ("ErrorsAlarm", "PermanentFailuresAlarm", "TransientFailureRateAlarm")
        ]
        assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
        assert "Canary10Percent5Minutes" in json_text(group["DeploymentConfigName"])
        assert resources[alias]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"] == {"Ref": f"{fname}DeploymentGroup"}
    # No event source mapping invokes $LATEST.
    assert all(
        r["Properties"]["FunctionName"]["Ref"].endswith("Aliaslive")
        for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"
    )


def json_text(value):
    import json

    return json.dumps(value)


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_functions_log_json_to_a_log_group_named_up_front(template, fname):
    binary, _, _, _ = FUNCTIONS[fname]
    group = fname.removesuffix("Function") + "LogGroup"
    assert props(template, fname)["LoggingConfig"] == {
        "LogGroup": {"Ref": group},
        "LogFormat": "JSON",
        "ApplicationLogLevel": "TRACE",
        "SystemLogLevel": "INFO",
    }
    assert props(template, group) == {
        "LogGroupName": {"Fn::Sub": f"/aws/lambda/{STACK}-{binary}"},
        "RetentionInDays": {"Ref": "LogRetentionDays"},
    }
    # Lambda's default log group is the one named: `sam logs` and the console find it.
    assert props(template, group)["LogGroupName"]["Fn::Sub"] == "/aws/lambda/" + props(template, fname)["FunctionName"]["Fn::Sub"]
    assert tc.granted_actions(template, fname)[group] == {"logs:createlogstream", "logs:putlogevents"}


def test_business_tables_survive_the_stack(template):
    for table in ("StockTable", "ShipmentsTable", "PointsTable"):
        assert res(template, table)["DeletionPolicy"] == "Retain"
        assert res(template, table)["UpdateReplacePolicy"] == "Retain"
        assert props(template, table)["DeletionProtectionEnabled"] is True
    # The idempotency table (24-hour records) goes with the stack.
    assert tc.idempotency_tables(template) == {"IdempotencyTable"}
    assert "DeletionPolicy" not in res(template, "IdempotencyTable")
    assert "DeletionProtectionEnabled" not in props(template, "IdempotencyTable")


# What functions/points/src/rate.rs parses (and what it refuses), checked against the pattern.
POINTS_RATE_ACCEPTED = ["0.01", "0.015", "2", "12.000000001", "0.0", "123456789.123456789", "0.123456789"]
POINTS_RATE_REJECTED = ["", "-0.01", "1e-2", "0,01", "abc", "0.0000000001", ".5", "1234567890", "1.", " 0.01", "0.01 "]


def test_points_rate_allows_what_the_function_parses(template):
    pattern = template["Parameters"]["PointsRate"]["AllowedPattern"]
    assert pattern == tc.POINTS_RATE_PATTERN
    for value in POINTS_RATE_ACCEPTED:
        assert re.fullmatch(pattern, value), value
    for value in POINTS_RATE_REJECTED:
        assert not re.fullmatch(pattern, value), value


def test_max_receive_count_is_at_least_five(template):
    assert template["Parameters"]["MaxReceiveCount"]["MinValue"] == 5
    assert template["Parameters"]["MaxReceiveCount"]["Default"] == 5


def test_stack_name_limit_is_the_longest_function_name(template):
    # `<stack>-inventory` (10 characters after the stack name) in Lambda's 64.
    assert tc.stack_name_limit(template) == tc.STACK_NAME_LIMIT == 64 - len("-inventory")
    assert f"{tc.STACK_NAME_LIMIT} characters" in DEPLOY_MD
    assert "60 characters" not in DEPLOY_MD


# ------------------------------------------------------------ issue 15: broken copies
def test_missing_failed_record_alarms_are_reported(template):
    del template["Resources"]["EmailPermanentFailuresAlarm"]
    del template["Resources"]["ShippingTransientFailureRateAlarm"]
    del template["Resources"]["PointsDurationAlarm"]
    problems = tc.check_alarms(template)
    assert problems_mentioning(problems, "EmailFunction", "RecordsFailedPermanent")
    assert problems_mentioning(problems, "ShippingFunction", "RecordsFailedTransient")
    assert problems_mentioning(problems, "PointsFunction", "Duration p99")


def test_permanent_failure_alarm_without_dead_lettered_is_reported(template):
    entry = props(template, "InventoryPermanentFailuresAlarm")["Metrics"]
    entry[:] = [m for m in entry if m["Id"] != "dead_lettered"]
    entry[-1]["Expression"] = "FILL(permanent, 0)"
    assert problems_mentioning(tc.check_alarms(template), "InventoryFunction", "RecordsDeadLettered")


def test_transient_rate_over_some_records_only_is_reported(template):
    entry = props(template, "EmailTransientFailureRateAlarm")["Metrics"]
    entry[-1]["Expression"] = "100 * transient / (processed + transient)"
    assert problems_mentioning(tc.check_alarms(template), "EmailFunction", "RecordsFailedTransient")


def test_transient_rate_threshold_outside_percent_is_reported(template):
    template["Parameters"]["TransientFailureRatePercent"]["MaxValue"] = 1000
    assert problems_mentioning(tc.check_alarms(template), "PointsTransientFailureRateAlarm", "1 to 100")


def test_duration_threshold_away_from_the_timeout_is_reported(template):
    template["Mappings"]["FunctionSettings"]["shipping"]["DurationAlarm"] = 30000
    assert problems_mentioning(tc.check_alarms(template), "ShippingDurationAlarm", "80%")


def test_dlq_depth_alarm_that_fires_once_is_reported(template):
    # The old shape: "depth > 0" stays in ALARM while one old message sits there.
    entry = props(template, "PointsDLQNewMessagesAlarm")["Metrics"]
    entry[-1]["Expression"] = "FILL(depth, 0)"
    problems = tc.check_alarms(template)
    assert problems_mentioning(problems, "PointsDLQ", "DIFF")
    # DIFF over a single period has no previous data point.
    props(template, "EmailDLQNewMessagesAlarm")["EvaluationPeriods"] = 1
    assert problems_mentioning(tc.check_alarms(template), "EmailDLQ", "2 or more periods")


def test_missing_dlq_alarms_are_reported(template):
    del template["Resources"]["DeliveryDLQNewMessagesAlarm"]
    del template["Resources"]["InventoryDLQAgeAlarm"]
    problems = tc.check_alarms(template)
    assert problems_mentioning(problems, "DeliveryDLQ", "DIFF")
    assert problems_mentioning(problems, "InventoryDLQ", "ApproximateAgeOfOldestMessage")


def test_dlq_age_threshold_at_retention_is_reported(template):
    template["Parameters"]["DLQAgeAlarmSeconds"]["MaxValue"] = tc.DLQ_RETENTION_SECONDS
    assert problems_mentioning(tc.check_alarms(template), "EmailDLQAgeAlarm", "a day before")


def test_missing_topic_redrive_alarm_is_reported(template):
    del template["Resources"]["OrdersTopicRedriveFailuresAlarm"]
    assert problems_mentioning(tc.check_alarms(template), "OrdersTopic", "NumberOfNotificationsFailedToRedriveToDlq")


def test_ok_actions_on_the_wrong_alarms_are_reported(template):
    del props(template, "EmailQueueAgeAlarm")["OKActions"]
    props(template, "PointsPermanentFailuresAlarm")["OKActions"] = [{"Ref": "AlarmTopic"}]
    problems = tc.check_alarms(template)
    assert problems_mentioning(problems, "EmailQueueAgeAlarm", "OKActions should")
    assert problems_mentioning(problems, "PointsPermanentFailuresAlarm", "no OKActions")


def test_unnamed_or_undescribed_alarms_are_reported(template):
    del props(template, "EmailErrorsAlarm")["AlarmName"]
    props(template, "ShippingErrorsAlarm")["AlarmName"] = {"Fn::Sub": "${AWS::StackName}-email-throttles"}
    props(template, "PointsErrorsAlarm")["AlarmDescription"] = "The points function failed."
    props(template, "InventoryErrorsAlarm")["AlarmName"] = "inventory-errors"
    problems = tc.check_alarms(template)
    assert problems_mentioning(problems, "EmailErrorsAlarm", "AlarmName")
    assert problems_mentioning(problems, "InventoryErrorsAlarm", "AlarmName")
    assert problems_mentioning(problems, "email-throttles", "also")
    assert problems_mentioning(problems, "PointsErrorsAlarm", "First:", "runbook points-errors")


def test_alarm_without_a_topic_is_reported(template):
    props(template, "EmailThrottlesAlarm")["AlarmActions"] = []
    assert problems_mentioning(tc.check_alarms(template), "EmailThrottlesAlarm", "AlarmActions should notify an SNS topic")


def test_literal_queue_age_threshold_is_reported(template):
    props(template, "ShippingQueueAgeAlarm")["Threshold"] = 300
    assert problems_mentioning(tc.check_alarms(template), "ShippingQueue", "threshold should be a parameter")


@pytest.mark.parametrize(
    "alarm, change, words",
    [
        ("EmailErrorsAlarm", {"Unit": "Count"}, ["Unit"]),
        ("EmailErrorsAlarm", {"Statistic": "SampleCount"}, ["Statistic"]),
        ("EmailDurationAlarm", {"Statistic": "Maximum"}, ["not both"]),
        ("EmailErrorsAlarm", {"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, ["ComparisonOperator"]),
        ("EmailErrorsAlarm", {"Period": None}, ["Period is missing"]),
        ("EmailErrorsAlarm", {"EvaluationPeriods": None}, ["EvaluationPeriods is missing"]),
        ("EmailPermanentFailuresAlarm", {"Namespace": "SqsKit"}, ["Namespace", "metric math"]),
    ],
    ids=["unit", "sample-count", "both-statistics", "band", "no-period", "no-evaluation-periods", "mixed"],
)
def test_alarm_outside_the_local_evaluators_shapes_is_reported(template, alarm, change, words):
    p = props(template, alarm)
    for key, value in change.items():
        if value is None:
            del p[key]
        else:
            p[key] = value
    assert problems_mentioning(tc.check_alarm_shapes(template), alarm, *words)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda m: m[-1].update(Expression="RATE(permanent) + dead_lettered"), ["RATE"]),
        (lambda m: m[-1].update(Expression="FILL(permanent, 0)"), ["exactly its metrics"]),
        (lambda m: m.append({"Id": "second", "Expression": "permanent", "ReturnData": True}), ["exactly one"]),
        (lambda m: m[0].update(Id="Permanent"), ["Id"]),
        (lambda m: m[0]["MetricStat"].update(Unit="Count"), ["metric permanent should be"]),
        (lambda m: m[0]["MetricStat"].update(Stat="p99"), ["metric permanent should be"]),
        (lambda m: m[1].update(Id="permanent"), ["unique"]),
    ],
    ids=["function", "unused-metric", "two-expressions", "id", "metric-unit", "metric-percentile", "duplicate-id"],
)
def test_metric_math_outside_the_local_evaluators_shapes_is_reported(template, change, words):
    change(props(template, "ShippingPermanentFailuresAlarm")["Metrics"])
    assert problems_mentioning(tc.check_alarm_shapes(template), "ShippingPermanentFailuresAlarm", *words)


def test_logging_breakages_are_reported(template):
    props(template, "EmailFunction")["LoggingConfig"]["LogFormat"] = "Text"
    props(template, "ShippingFunction")["LoggingConfig"]["ApplicationLogLevel"] = "WARN"
    props(template, "InventoryLogGroup")["LogGroupName"] = {"Fn::Sub": "/aws/lambda/${InventoryFunction}"}
    props(template, "PointsLogGroup")["RetentionInDays"] = 3653
    problems = tc.check_logging(template)
    assert problems_mentioning(problems, "EmailFunction", "JSON")
    assert problems_mentioning(problems, "ShippingFunction", "TRACE")
    assert problems_mentioning(problems, "InventoryLogGroup", "named up front")
    assert problems_mentioning(problems, "PointsLogGroup", "LogRetentionDays")


def test_shared_or_missing_log_groups_are_reported(template):
    props(template, "ShippingFunction")["LoggingConfig"]["LogGroup"] = {"Ref": "EmailLogGroup"}
    del props(template, "PointsFunction")["LoggingConfig"]
    problems = tc.check_logging(template)
    assert problems_mentioning(problems, "ShippingFunction", "also EmailFunction's")
    assert problems_mentioning(problems, "ShippingLogGroup", "no function")
    assert problems_mentioning(problems, "PointsFunction", "LoggingConfig.LogGroup")


def test_rollout_breakages_are_reported(template):
    del props(template, "EmailFunction")["AutoPublishAlias"]
    props(template, "ShippingFunction")["AutoPublishAliasAllProperties"] = False
    props(template, "InventoryFunction")["DeploymentPreference"]["Type"] = "AllAtOnce"
    props(template, "PointsFunction")["DeploymentPreference"]["Alarms"] = [{"Ref": "PointsThrottlesAlarm"}, {"Ref": "PointsQueue"}]
    problems = tc.check_deployment(template)
    assert problems_mentioning(problems, "EmailFunction", "AutoPublishAlias")
    assert problems_mentioning(problems, "ShippingFunction", "AutoPublishAliasAllProperties")
    assert problems_mentioning(problems, "InventoryFunction", "canary or linear")
    assert problems_mentioning(problems, "PointsFunction", "alarms of this template")
    for what in ("Errors", "permanent failures", "transient failure rate"):
        assert problems_mentioning(problems, "PointsFunction", f"its {what} alarm")


def test_business_table_that_can_be_deleted_is_reported(template):
    del res(template, "StockTable")["DeletionPolicy"]
    res(template, "ShipmentsTable")["UpdateReplacePolicy"] = "Delete"
    props(template, "PointsTable")["DeletionProtectionEnabled"] = False
    problems = tc.check_data_safety(template)
    assert problems_mentioning(problems, "StockTable", "DeletionPolicy")
    assert problems_mentioning(problems, "ShipmentsTable", "UpdateReplacePolicy")
    assert problems_mentioning(problems, "PointsTable", "DeletionProtectionEnabled")
    for table in ("StockTable", "ShipmentsTable", "PointsTable"):
        del template["Resources"][table]
    assert problems_mentioning(tc.check_data_safety(template), "no business table")


def test_alarms_that_may_reach_nobody_are_reported(template):
    template["Parameters"]["AlarmEmail"]["Default"] = ""
    template["Parameters"]["AlarmEmail"]["AllowedPattern"] = "^$|" + tc.EMAIL_PATTERN
    res(template, "AlarmEmailSubscription")["Condition"] = "HasAlarmEmail"
    problems = tc.check_paging(template)
    assert problems_mentioning(problems, "AlarmEmail", "no Default")
    assert problems_mentioning(problems, "AlarmEmail", "only e-mail addresses")
    assert problems_mentioning(problems, "AlarmTopic", "reach nobody")
    del template["Parameters"]["AlarmEmail"]
    assert problems_mentioning(tc.check_paging(template), "AlarmEmail is missing")


def test_defaults_cloudformation_would_refuse_are_reported(template):
    template["Parameters"]["LogLevel"]["Default"] = "VERBOSE"
    template["Parameters"]["EmailBackoff"]["Default"] = "sometimes"
    template["Parameters"]["StandardBatchSize"]["Default"] = 11
    template["Parameters"]["MaxConcurrency"]["Default"] = 1
    template["Parameters"]["PointsRate"]["AllowedPattern"] = "^[0-9]+(\\.[0-9]+)?$"
    problems = tc.check_parameters(template)
    assert problems_mentioning(problems, "LogLevel", "AllowedValues")
    assert problems_mentioning(problems, "EmailBackoff", "AllowedPattern")
    assert problems_mentioning(problems, "StandardBatchSize", "MaxValue")
    assert problems_mentioning(problems, "MaxConcurrency", "MinValue")
    assert problems_mentioning(problems, "PointsRate", "points function")


def test_small_max_receive_count_is_reported(template):
    template["Parameters"]["MaxReceiveCount"]["MinValue"] = 1
    assert problems_mentioning(tc.check_redrive(template), "MaxReceiveCount", "MinValue 5")
    template["Parameters"]["MaxReceiveCount"]["Default"] = 3
    assert problems_mentioning(tc.check_redrive(template), "MaxReceiveCount", "default to 5")
    del template["Parameters"]["MaxReceiveCount"]
    assert problems_mentioning(tc.check_redrive(template), "MaxReceiveCount is missing")


def test_name_longer_than_the_stack_name_limit_allows_is_reported(template):
    props(template, "InventoryFunction")["FunctionName"] = {"Fn::Sub": "${AWS::StackName}-inventory-reservations"}
    props(template, "EmailQueue")["QueueName"] = {"Fn::Sub": "${AWS::StackName}-${EmailFunction}"}
    problems = tc.check_name_lengths(template)
    assert problems_mentioning(problems, "InventoryFunction.FunctionName", "over the 64 allowed")
    assert problems_mentioning(problems, "EmailQueue.QueueName", "stack name only")
    assert tc.stack_name_limit(template) == 64 - len("-inventory-reservations")


def test_missing_event_source_mapping_metrics_are_reported(template):
    del props(template, "EmailFunction")["Events"]["Orders"]["Properties"]["MetricsConfig"]
    assert problems_mentioning(tc.check_event_settings(template), "EmailFunction", "MetricsConfig")


# ------------------------------------------------------------ every other failure branch
def test_template_without_functions_is_reported(template):
    for fname in FUNCTIONS:
        del template["Resources"][fname]
    assert problems_mentioning(tc.check_pairs_exist(template), "no AWS::Serverless::Function")


def test_function_with_two_queues_or_a_foreign_queue_is_reported(template):
    events = props(template, "EmailFunction")["Events"]
    events["Again"] = {"Type": "SQS", "Properties": {"Queue": "arn:aws:sqs:us-east-1:123456789012:elsewhere"}}
    problems = tc.check_pairs_exist(template)
    assert problems_mentioning(problems, "EmailFunction", "exactly one SQS event, found 2")
    assert problems_mentioning(problems, "EmailFunction.Again", "not name a queue of this template")


def test_queue_drained_by_two_functions_is_reported(template):
    props(template, "ShippingFunction")["Events"]["Orders"]["Properties"]["Queue"] = {"Fn::GetAtt": ["EmailQueue", "Arn"]}
    assert problems_mentioning(tc.check_pairs_exist(template), "EmailQueue is drained by two functions")


def test_dead_letter_target_outside_the_template_or_itself_is_reported(template):
    props(template, "EmailQueue")["RedrivePolicy"]["deadLetterTargetArn"] = "arn:aws:sqs:us-east-1:123456789012:dlq"
    props(template, "ShippingQueue")["RedrivePolicy"]["deadLetterTargetArn"] = {"Fn::GetAtt": ["ShippingQueue", "Arn"]}
    problems = tc.check_redrive(template)
    assert problems_mentioning(problems, "EmailQueue", "deadLetterTargetArn is not")
    assert problems_mentioning(problems, "ShippingQueue is its own dead-letter queue")


def test_fifo_suffix_on_a_standard_queue_is_reported(template):
    props(template, "EmailQueue")["QueueName"] = {"Fn::Sub": "${AWS::StackName}-email.fifo"}
    assert problems_mentioning(tc.check_redrive(template), "EmailQueue", ".fifo exactly when")


def test_dlq_that_expires_before_its_source_is_reported(template):
    props(template, "EmailQueue")["MessageRetentionPeriod"] = tc.DLQ_RETENTION_SECONDS
    assert problems_mentioning(tc.check_redrive(template), "EmailDLQ", "longer than its source EmailQueue")


def test_queue_without_a_fixed_name_is_reported(template):
    del props(template, "PointsQueue")["QueueName"]
    assert problems_mentioning(tc.check_redrive(template), "PointsQueue", "fixed QueueName")


def test_mapping_row_without_batching_window_is_reported(template):
    del template["Mappings"]["FunctionSettings"]["email"]["BatchingWindow"]
    assert problems_mentioning(tc.check_visibility(template), "EmailFunction", "has no BatchingWindow")


def test_unresolvable_timeout_is_reported(template):
    props(template, "InventoryFunction")["Timeout"] = {"Ref": "QueueAgeAlarmSeconds"}  # no MaxValue
    problems = tc.check_visibility(template)
    assert problems_mentioning(problems, "InventoryFunction/InventoryQueue", "one mapping row")
    assert problems_mentioning(problems, "InventoryFunction/InventoryQueue", "cannot be resolved")


def test_event_settings_not_from_parameters_are_reported(template):
    email = props(template, "EmailFunction")["Events"]["Orders"]["Properties"]
    email["BatchSize"] = 10
    email["MaximumBatchingWindowInSeconds"] = 1
    email["ScalingConfig"]["MaximumConcurrency"] = 5
    problems = tc.check_event_settings(template)
    assert problems_mentioning(problems, "EmailFunction", "BatchSize should come from a parameter")
    assert problems_mentioning(problems, "EmailFunction", "MaximumBatchingWindowInSeconds should come from a parameter")
    assert problems_mentioning(problems, "EmailFunction", "MaximumConcurrency should come from a parameter")


def test_standard_batch_sizes_lambda_refuses_are_reported(template):
    template["Parameters"]["StandardBatchSize"]["MaxValue"] = 100
    assert problems_mentioning(tc.check_event_settings(template), "ShippingFunction", "batching window of at least 1 s")
    template["Parameters"]["StandardBatchSize"]["MaxValue"] = 20000
    assert problems_mentioning(tc.check_event_settings(template), "ShippingFunction", "at most 10000")


def test_wrong_runtime_and_handler_are_reported(template):
    props(template, "EmailFunction")["Runtime"] = "provided.al2"
    props(template, "ShippingFunction")["Handler"] = "main"
    del res(template, "InventoryFunction")["Metadata"]["BuildMethod"]
    problems = tc.check_function_build(template)
    assert problems_mentioning(problems, "EmailFunction", "provided.al2023")
    assert problems_mentioning(problems, "ShippingFunction", "bootstrap")
    assert problems_mentioning(problems, "InventoryFunction", "rust-cargolambda")


def test_subscription_breakages_are_reported(template):
    del template["Resources"]["EmailSubscription"]
    props(template, "InventorySubscription")["TopicArn"] = "arn:aws:sns:us-east-1:123456789012:other.fifo"
    props(template, "PointsSubscription")["RedrivePolicy"]["deadLetterTargetArn"] = {"Fn::GetAtt": ["EmailDLQ", "Arn"]}
    problems = tc.check_fan_out(template)
    assert problems_mentioning(problems, "EmailQueue", "expected one SNS subscription, found 0")
    assert problems_mentioning(problems, "InventorySubscription", "TopicArn should be !Ref")
    assert problems_mentioning(problems, "PointsSubscription", "topic's type (FIFO)")


def test_standard_topic_is_reported(template):
    props(template, "OrdersTopic")["FifoTopic"] = False
    assert problems_mentioning(tc.check_fan_out(template), "OrdersTopic", "FIFO topic named *.fifo")


def test_queue_policy_breakages_are_reported(template):
    del template["Resources"]["ShippingQueuePolicy"]
    props(template, "EmailQueuePolicy")["PolicyDocument"]["Statement"][0]["Principal"] = {"AWS": "*"}
    problems = tc.check_fan_out(template)
    assert problems_mentioning(problems, "ShippingQueue", "no AWS::SQS::QueuePolicy")
    assert problems_mentioning(problems, "EmailQueue", "only sns.amazonaws.com")


def test_role_breakages_are_reported(template):
    props(template, "EmailFunction")["Role"] = "arn:aws:iam::123456789012:role/shared"
    props(template, "ShippingFunction")["Policies"] = ["AWSLambdaBasicExecutionRole"]
    props(template, "InventoryRole")["Policies"] = []
    statements_of(template, "PointsRole")[0]["NotAction"] = statements_of(template, "PointsRole")[0].pop("Action")
    problems = tc.check_least_privilege(template)
    assert problems_mentioning(problems, "EmailFunction", "Role should be !GetAtt")
    assert problems_mentioning(problems, "ShippingFunction", "Policies are ignored")
    assert problems_mentioning(problems, "InventoryFunction", "grants nothing")
    assert problems_mentioning(problems, "PointsFunction", "NotAction/NotResource")


def test_backoff_not_from_its_parameter_is_reported(template):
    props(template, "ShippingFunction")["Environment"]["Variables"]["SQS_KIT_BACKOFF"] = "off"
    assert problems_mentioning(tc.check_retry_control(template), "ShippingFunction", "SQS_KIT_BACKOFF should be !Ref ShippingBackoff")


def test_condition_on_an_unknown_parameter_is_reported(template):
    template["Conditions"]["EmailBackoffOn"] = {"Fn::Not": [{"Fn::Equals": [{"Ref": "EmailRetries"}, "off"]}]}
    assert problems_mentioning(tc.check_retry_control(template), "Conditions:", "EmailRetries")


def test_checkov_skip_without_id_or_twice_is_reported(template):
    skips = res(template, "EmailFunction")["Metadata"]["checkov"]["skip"]
    skips.append(dict(skips[0]))
    skips.append({"comment": "no id"})
    problems = tc.check_checkov_skips(template)
    assert problems_mentioning(problems, "EmailFunction", "CKV_AWS_116 is listed twice")
    assert problems_mentioning(problems, "EmailFunction", "needs an id")
