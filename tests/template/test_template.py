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


def test_alarm_email_subscription_is_optional(template):
    sub = res(template, "AlarmEmailSubscription")
    assert sub["Condition"] == "HasAlarmEmail"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


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
    assert {n for n, p in params.items() if "Default" not in p} <= set(overrides)
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


def test_missing_dlq_alarm_is_reported(template):
    del template["Resources"]["PointsDLQAlarm"]
    assert problems_mentioning(tc.check_alarms(template), "PointsDLQ", "no ApproximateNumberOfMessagesVisible")


def test_dlq_alarm_on_the_wrong_metric_is_reported(template):
    props(template, "EmailDLQAlarm")["MetricName"] = "NumberOfMessagesSent"
    assert problems_mentioning(tc.check_alarms(template), "EmailDLQ", "no ApproximateNumberOfMessagesVisible")


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


def test_star_in_a_separate_role_policy_is_reported(template):
    props(template, "EmailLogPolicy")["PolicyDocument"]["Statement"][0]["Resource"] = "*"
    assert problems_mentioning(tc.check_least_privilege(template), "EmailFunction", "Resource '*'", "logs:")


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
