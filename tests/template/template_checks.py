"""Invariant checks over a parsed SAM template (the README's Deploying section),
and the checkov skips it may carry (issue 8).

Every check is a function ``check_x(template) -> list[str]`` over the template
as plain dicts and lists (short-form tags already turned into their long
``{"Fn::...": ...}`` form, as ``load_template`` does with cfn-lint's decoder).
It returns one human-readable problem per violation, an empty list when the
template is right, so a test can show that each check also fails.

The checks look at the template as written (before the SAM transform): a
"pair" is an ``AWS::Serverless::Function`` and the ``AWS::SQS::Queue`` its
``SQS`` event reads from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

DLQ_RETENTION_SECONDS = 14 * 24 * 3600
SQS_DEFAULT_RETENTION_SECONDS = 4 * 24 * 3600
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30
LAMBDA_DEFAULT_TIMEOUT = 3
FIFO_MAX_BATCH_SIZE = 10
STANDARD_MAX_BATCH_SIZE = 10000
MIN_MAX_CONCURRENCY, MAX_MAX_CONCURRENCY = 2, 1000
VISIBILITY_FACTOR = 6
MIN_MAX_RECEIVE_COUNT = 5

# Actions that have no resource-level permissions in IAM: "*" is the only
# resource they can be granted on. Nothing else may use "*".
RESOURCELESS_ACTIONS = frozenset({"xray:puttracesegments", "xray:puttelemetryrecords"})

SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


# ----------------------------------------------------------------- loading
def load_template(path: str | Path) -> dict:
    """Parse a template with cfn-lint's decoder (understands !Sub, !Ref, ...)
    and return it as plain dicts and lists."""
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    if matches or template is None:
        raise ValueError(f"{path} does not parse: {[str(m) for m in matches]}")
    return json.loads(json.dumps(template))


# ----------------------------------------------------------------- helpers
def resources(template: dict, *types: str) -> dict[str, dict]:
    return {
        name: res
        for name, res in template.get("Resources", {}).items()
        if isinstance(res, dict) and res.get("Type") in types
    }


def props(resource: dict) -> dict:
    value = resource.get("Properties")
    return value if isinstance(value, dict) else {}


def ref_target(value: Any) -> str | None:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` names, else None."""
    if isinstance(value, dict) and len(value) == 1:
        if "Ref" in value and isinstance(value["Ref"], str):
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            if isinstance(att, list) and att and isinstance(att[0], str):
                return att[0]
            if isinstance(att, str):
                return att.split(".", 1)[0]
    return None


def getatt(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        att = value["Fn::GetAtt"]
        if isinstance(att, list) and len(att) == 2 and all(isinstance(a, str) for a in att):
            return att[0], att[1]
        if isinstance(att, str) and "." in att:
            logical, attribute = att.split(".", 1)
            return logical, attribute
    return None


def is_getatt(value: Any, logical: str, attribute: str) -> bool:
    return getatt(value) == (logical, attribute)


def is_ref(value: Any, logical: str) -> bool:
    return isinstance(value, dict) and value == {"Ref": logical}


def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# ----------------------------------------------------------------- conditions
_NO_VALUE = object()


class _Branches(list):
    """Both branches of an ``Fn::If``, spliced into the list that holds it."""


def parameter_values(template: dict, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Every parameter's value as CloudFormation passes it (text): its default,
    or the override. Parameters without either are left out."""
    values = {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if isinstance(spec, dict) and "Default" in spec
    }
    values.update(overrides or {})
    return values


def evaluate_conditions(template: dict, parameters: dict[str, str]) -> dict[str, bool]:
    """The truth of every condition of the template for these parameter values
    (``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition``, ``Ref``)."""
    definitions = template.get("Conditions", {})

    def value(v: Any) -> Any:
        if isinstance(v, dict) and list(v) == ["Ref"]:
            if v["Ref"] not in parameters:
                raise ValueError(f"a condition refers to {v['Ref']}, which has no value")
            return parameters[v["Ref"]]
        return truth(v) if isinstance(v, dict) else str(v)

    def truth(v: Any, seen: tuple = ()) -> bool:
        if isinstance(v, bool):
            return v
        if not isinstance(v, dict) or len(v) != 1:
            raise ValueError(f"{v!r} is not a condition")
        (function, args), = v.items()
        if function == "Condition":
            if args in seen or args not in definitions:
                raise ValueError(f"condition {args} is undefined or refers to itself")
            return truth(definitions[args], seen + (args,))
        if function == "Fn::Equals":
            return value(args[0]) == value(args[1])
        if function == "Fn::Not":
            return not truth(args[0], seen)
        if function == "Fn::And":
            return all(truth(a, seen) for a in args)
        if function == "Fn::Or":
            return any(truth(a, seen) for a in args)
        raise ValueError(f"{function} is not a condition function")

    return {name: truth({"Condition": name}) for name in definitions}


def select(value: Any, conditions: dict[str, bool] | None) -> Any:
    """The value with every ``Fn::If`` replaced by the branch its condition
    picks, and ``AWS::NoValue`` left out. With ``conditions`` None, by both
    branches (spliced into the enclosing list): what the template could ever
    hold, e.g. every statement a role could ever grant."""
    if isinstance(value, dict):
        if value == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        if list(value) == ["Fn::If"] and isinstance(value["Fn::If"], list) and len(value["Fn::If"]) == 3:
            name, then, otherwise = value["Fn::If"]
            if conditions is None:
                return _Branches(b for b in (select(then, None), select(otherwise, None)) if b is not _NO_VALUE)
            return select(then if conditions[name] else otherwise, conditions)
        selected = {k: select(v, conditions) for k, v in value.items()}
        return {k: v for k, v in selected.items() if v is not _NO_VALUE}
    if isinstance(value, list):
        out: list = []
        for item in value:
            chosen = select(item, conditions)
            if isinstance(chosen, _Branches):
                out.extend(chosen)
            elif chosen is not _NO_VALUE:
                out.append(chosen)
        return out
    return value


def parameter(template: dict, name: str) -> dict | None:
    value = template.get("Parameters", {}).get(name)
    return value if isinstance(value, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return None
    return None


def find_in_map(template: dict, value: Any) -> tuple[str, str, dict] | None:
    """(map, top key, row) for a ``Fn::FindInMap`` with literal keys."""
    if isinstance(value, dict) and list(value) == ["Fn::FindInMap"]:
        args = value["Fn::FindInMap"]
        if isinstance(args, list) and len(args) >= 3 and all(isinstance(a, str) for a in args[:3]):
            row = template.get("Mappings", {}).get(args[0], {}).get(args[1])
            if isinstance(row, dict):
                return args[0], args[1], row
    return None


def resolve_number(template: dict, value: Any, bound: str) -> float | None:
    """The number a value can take: a literal, a mapping entry, or, for a
    parameter, its smallest (``bound="min"``) or largest (``bound="max"``)
    allowed value. None when it cannot be known (e.g. an unbounded parameter)."""
    literal = _number(value)
    if literal is not None:
        return literal
    found = find_in_map(template, value)
    if found is not None:
        key = value["Fn::FindInMap"][2]
        return _number(found[2].get(key))
    if isinstance(value, dict) and list(value) == ["Ref"]:
        spec = parameter(template, value["Ref"])
        if spec is None:
            return None
        allowed = [_number(v) for v in as_list(spec.get("AllowedValues"))]
        allowed = [v for v in allowed if v is not None]
        if allowed:
            return min(allowed) if bound == "min" else max(allowed)
        return _number(spec.get("MinValue" if bound == "min" else "MaxValue"))
    return None


def globals_function(template: dict) -> dict:
    value = template.get("Globals", {}).get("Function", {})
    return value if isinstance(value, dict) else {}


def function_property(template: dict, function: dict, key: str, default: Any = None) -> Any:
    """A function property with SAM's Globals applied (function wins)."""
    value = props(function).get(key)
    if value is None:
        value = globals_function(template).get(key, default)
    return value


def function_env(template: dict, function: dict) -> dict:
    merged: dict = {}
    for source in (globals_function(template), props(function)):
        variables = (source.get("Environment") or {}).get("Variables") or {}
        if isinstance(variables, dict):
            merged.update(variables)
    return merged


def queue_is_fifo(queue: dict) -> bool:
    return truthy(props(queue).get("FifoQueue"))


def sub_string(value: Any) -> str | None:
    """The pattern of a ``Fn::Sub`` (either form), else None."""
    if isinstance(value, dict) and list(value) == ["Fn::Sub"]:
        sub = value["Fn::Sub"]
        if isinstance(sub, str):
            return sub
        if isinstance(sub, list) and sub and isinstance(sub[0], str):
            return sub[0]
    return None


def sub_references(value: Any) -> set[str]:
    pattern = sub_string(value)
    if pattern is None:
        return set()
    return {v.split(".", 1)[0] for v in SUB_VARIABLE.findall(pattern)}


def sqs_events(function: dict) -> Iterator[tuple[str, dict]]:
    events = props(function).get("Events") or {}
    for name, event in events.items():
        if isinstance(event, dict) and event.get("Type") == "SQS":
            yield name, event.get("Properties") or {}


def pairs(template: dict) -> list[tuple[str, dict, str, str, dict, dict]]:
    """(function id, function, event name, queue id, queue, event properties)
    for every SQS event of every SAM function whose queue is in the template."""
    queues = resources(template, "AWS::SQS::Queue")
    found = []
    for fname, function in resources(template, "AWS::Serverless::Function").items():
        for ename, eprops in sqs_events(function):
            qname = ref_target(eprops.get("Queue"))
            if qname in queues:
                found.append((fname, function, ename, qname, queues[qname], eprops))
    return found


def redrive_target(queue: dict) -> str | None:
    policy = props(queue).get("RedrivePolicy")
    if isinstance(policy, dict):
        return ref_target(policy.get("deadLetterTargetArn"))
    return None


def dead_letter_queues(template: dict) -> dict[str, str]:
    """Every queue used as a dead-letter queue, with what it serves."""
    queues = resources(template, "AWS::SQS::Queue")
    found: dict[str, str] = {}
    for qname, queue in queues.items():
        target = redrive_target(queue)
        if target in queues:
            found[target] = f"redrive target of {qname}"
    for sname, sub in resources(template, "AWS::SNS::Subscription").items():
        policy = props(sub).get("RedrivePolicy")
        if isinstance(policy, dict):
            target = ref_target(policy.get("deadLetterTargetArn"))
            if target in queues:
                found.setdefault(target, f"dead-letter queue of subscription {sname}")
    return found


def queue_arn_pattern(queue: dict) -> str | None:
    """The ``Fn::Sub`` pattern of the queue's ARN, from its fixed QueueName."""
    name = props(queue).get("QueueName")
    pattern = sub_string(name) if isinstance(name, dict) else name
    if not isinstance(pattern, str):
        return None
    return "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:" + pattern


# ----------------------------------------------------------------- checks
def check_pairs_exist(template: dict) -> list[str]:
    problems = []
    functions = resources(template, "AWS::Serverless::Function")
    if not functions:
        problems.append("the template has no AWS::Serverless::Function")
    for fname, function in functions.items():
        events = list(sqs_events(function))
        if len(events) != 1:
            problems.append(f"{fname}: expected exactly one SQS event, found {len(events)}")
        for ename, eprops in events:
            if ref_target(eprops.get("Queue")) not in resources(template, "AWS::SQS::Queue"):
                problems.append(f"{fname}.{ename}: Queue does not name a queue of this template")
    seen: dict[str, str] = {}
    for fname, _, _, qname, _, _ in pairs(template):
        if qname in seen and seen[qname] != fname:
            problems.append(f"{qname} is drained by two functions ({seen[qname]}, {fname})")
        seen[qname] = fname
    # Every queue is a main queue of a pair or a dead-letter queue.
    dlqs = dead_letter_queues(template)
    for qname in resources(template, "AWS::SQS::Queue"):
        if qname not in seen and qname not in dlqs:
            problems.append(f"{qname} is neither read by a function nor used as a dead-letter queue")
    return problems


def check_redrive(template: dict) -> list[str]:
    problems = []
    queues = resources(template, "AWS::SQS::Queue")
    param = parameter(template, "MaxReceiveCount")
    if param is None:
        problems.append("parameter MaxReceiveCount is missing")
    else:
        if _number(param.get("Default")) != 5:
            problems.append("parameter MaxReceiveCount should default to 5")
        if (_number(param.get("MinValue")) or 0) < MIN_MAX_RECEIVE_COUNT:
            problems.append(f"parameter MaxReceiveCount should have MinValue {MIN_MAX_RECEIVE_COUNT} or more (a throttled receive counts too)")
    for fname, _, _, qname, queue, _ in pairs(template):
        qp = props(queue)
        policy = qp.get("RedrivePolicy")
        if not isinstance(policy, dict):
            problems.append(f"{qname} (read by {fname}) has no RedrivePolicy")
            continue
        dname = ref_target(policy.get("deadLetterTargetArn"))
        if not is_getatt(policy.get("deadLetterTargetArn"), str(dname), "Arn") or dname not in queues:
            problems.append(f"{qname}: deadLetterTargetArn is not !GetAtt <queue>.Arn of a queue in this template")
            continue
        if dname == qname:
            problems.append(f"{qname} is its own dead-letter queue")
            continue
        if not is_ref(policy.get("maxReceiveCount"), "MaxReceiveCount"):
            problems.append(f"{qname}: maxReceiveCount should be !Ref MaxReceiveCount")
        dlq = queues[dname]
        dp = props(dlq)
        if queue_is_fifo(queue) != queue_is_fifo(dlq):
            kind = "FIFO" if queue_is_fifo(queue) else "standard"
            problems.append(f"{qname} is a {kind} queue but its dead-letter queue {dname} is not")
        for name, q in ((qname, queue), (dname, dlq)):
            qn = sub_string(props(q).get("QueueName")) or props(q).get("QueueName")
            if isinstance(qn, str) and qn.endswith(".fifo") != queue_is_fifo(q):
                problems.append(f"{name}: a queue name ends in .fifo exactly when the queue is FIFO")
        retention = _number(dp.get("MessageRetentionPeriod"))
        source_retention = _number(qp.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION_SECONDS))
        if retention != DLQ_RETENTION_SECONDS:
            problems.append(f"{dname}: MessageRetentionPeriod should be {DLQ_RETENTION_SECONDS} (14 days), is {retention}")
        elif source_retention is None or source_retention >= retention:
            problems.append(f"{dname}: must keep messages longer than its source {qname}")
        allow = dp.get("RedriveAllowPolicy")
        expected_arn = queue_arn_pattern(queue)
        if expected_arn is None:
            problems.append(f"{qname}: needs a fixed QueueName so its DLQ's RedriveAllowPolicy can name it")
        if not isinstance(allow, dict) or allow.get("redrivePermission") != "byQueue":
            problems.append(f"{dname}: RedriveAllowPolicy should be byQueue naming only {qname}")
        else:
            sources = as_list(allow.get("sourceQueueArns"))
            if len(sources) != 1 or (expected_arn is not None and sub_string(sources[0]) != expected_arn):
                problems.append(
                    f"{dname}: RedriveAllowPolicy.sourceQueueArns should be exactly "
                    f'!Sub "{expected_arn}" ({qname}), is {sources}'
                )
    return problems


def check_visibility(template: dict) -> list[str]:
    """VisibilityTimeout >= 6 x Timeout + batching window, with the numbers
    side by side in one mapping row per function."""
    problems = []
    for fname, function, ename, qname, queue, eprops in pairs(template):
        timeout_value = function_property(template, function, "Timeout")
        vt_value = props(queue).get("VisibilityTimeout")
        t_row = find_in_map(template, timeout_value)
        v_row = find_in_map(template, vt_value)
        if t_row is None or v_row is None or t_row[:2] != v_row[:2]:
            problems.append(
                f"{fname}/{qname}: Timeout and VisibilityTimeout should both come from one "
                "mapping row (!FindInMap [Map, <function>, ...])"
            )
        timeout = resolve_number(template, timeout_value if timeout_value is not None else LAMBDA_DEFAULT_TIMEOUT, "max")
        vt = resolve_number(template, vt_value if vt_value is not None else SQS_DEFAULT_VISIBILITY_TIMEOUT, "min")
        window_value = eprops.get("MaximumBatchingWindowInSeconds")
        window = 0 if window_value is None else resolve_number(template, window_value, "max")
        if window is None:
            problems.append(f"{fname}.{ename}: MaximumBatchingWindowInSeconds has no upper bound (give the parameter a MaxValue)")
            continue
        row_window = None
        if t_row is not None:
            row_window = _number(t_row[2].get("BatchingWindow"))
            if row_window is None:
                problems.append(f"{fname}: mapping row {t_row[0]}.{t_row[1]} has no BatchingWindow")
            elif window > row_window:
                problems.append(
                    f"{fname}.{ename}: batching window can reach {window}s but mapping row "
                    f"{t_row[0]}.{t_row[1]} allows for {row_window}s"
                )
        if timeout is None or vt is None:
            problems.append(f"{fname}/{qname}: Timeout or VisibilityTimeout cannot be resolved to a number")
            continue
        effective_window = max(window, row_window or 0)
        needed = VISIBILITY_FACTOR * timeout + effective_window
        if vt < needed:
            problems.append(
                f"{qname}: VisibilityTimeout {vt} < {VISIBILITY_FACTOR} x {fname} timeout {timeout} "
                f"+ batching window {effective_window} = {needed}"
            )
    return problems


def check_event_settings(template: dict) -> list[str]:
    problems = []
    for fname, _, ename, qname, queue, eprops in pairs(template):
        where = f"{fname}.{ename}"
        if "ReportBatchItemFailures" not in as_list(eprops.get("FunctionResponseTypes")):
            problems.append(f"{where}: FunctionResponseTypes should include ReportBatchItemFailures")
        for key in ("BatchSize",):
            if ref_target(eprops.get(key)) not in template.get("Parameters", {}):
                problems.append(f"{where}: {key} should come from a parameter")
        batch_max = resolve_number(template, eprops.get("BatchSize", 10), "max")
        window = eprops.get("MaximumBatchingWindowInSeconds")
        if queue_is_fifo(queue):
            if window is not None:
                problems.append(f"{where}: {qname} is FIFO; Lambda rejects MaximumBatchingWindowInSeconds there")
            if batch_max is None or batch_max > FIFO_MAX_BATCH_SIZE:
                problems.append(f"{where}: batch size on a FIFO queue must be at most {FIFO_MAX_BATCH_SIZE} (can be {batch_max})")
        else:
            if window is None or ref_target(window) not in template.get("Parameters", {}):
                problems.append(f"{where}: MaximumBatchingWindowInSeconds should come from a parameter")
            if batch_max is None or batch_max > STANDARD_MAX_BATCH_SIZE:
                problems.append(f"{where}: batch size must be at most {STANDARD_MAX_BATCH_SIZE} (can be {batch_max})")
            elif batch_max > 10:
                window_min = resolve_number(template, window, "min") if window is not None else 0
                if not window_min or window_min < 1:
                    problems.append(f"{where}: a batch size over 10 needs a batching window of at least 1 s")
        if "EventCount" not in as_list((eprops.get("MetricsConfig") or {}).get("Metrics")):
            problems.append(f"{where}: MetricsConfig.Metrics should include EventCount (the event source mapping's metrics)")
        scaling = eprops.get("ScalingConfig") or {}
        conc = scaling.get("MaximumConcurrency") if isinstance(scaling, dict) else None
        if conc is None:
            problems.append(f"{where}: ScalingConfig.MaximumConcurrency is missing")
        else:
            if ref_target(conc) not in template.get("Parameters", {}):
                problems.append(f"{where}: ScalingConfig.MaximumConcurrency should come from a parameter")
            low = resolve_number(template, conc, "min")
            high = resolve_number(template, conc, "max")
            if low is None or high is None or low < MIN_MAX_CONCURRENCY or high > MAX_MAX_CONCURRENCY:
                problems.append(
                    f"{where}: MaximumConcurrency must stay within {MIN_MAX_CONCURRENCY}-{MAX_MAX_CONCURRENCY} "
                    f"(can be {low}-{high})"
                )
    return problems


def check_function_build(template: dict) -> list[str]:
    problems = []
    for fname, function in resources(template, "AWS::Serverless::Function").items():
        if function_property(template, function, "Runtime") != "provided.al2023":
            problems.append(f"{fname}: Runtime should be provided.al2023")
        if function_property(template, function, "Architectures") != ["arm64"]:
            problems.append(f"{fname}: Architectures should be [arm64]")
        if function_property(template, function, "Handler") != "bootstrap":
            problems.append(f"{fname}: Handler should be bootstrap")
        metadata = function.get("Metadata") or {}
        binary = (metadata.get("BuildProperties") or {}).get("Binary")
        if metadata.get("BuildMethod") != "rust-cargolambda" or not binary:
            problems.append(f"{fname}: Metadata needs BuildMethod rust-cargolambda and BuildProperties.Binary")
        elif function_property(template, function, "CodeUri") != f"functions/{binary}":
            problems.append(f"{fname}: CodeUri should be functions/{binary} (the crate that owns the binary)")
    return problems


ALARM_NAME_PREFIX = "${AWS::StackName}-"
STATISTICS = frozenset({"Sum", "Maximum", "Average", "Minimum"})
EXTENDED_STATISTIC = re.compile(r"^p(100|[0-9]{1,2}(\.[0-9]+)?)$")
COMPARISONS = frozenset(
    {"GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"}
)
METRIC_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
# The embedded metrics every batch writes (shared/sqs-kit/src/metrics.rs): each
# record is counted once, in exactly one of them.
SQS_KIT_NAMESPACE = "SqsKit"
RECORD_COUNTS = (
    "RecordsProcessed",
    "RecordsFailedTransient",
    "RecordsFailedPermanent",
    "DuplicatesSkipped",
    "RecordsNotAttempted",
    "RecordsDeadLettered",
)
PERMANENT_COUNTS = ("RecordsFailedPermanent", "RecordsDeadLettered")
# The Duration alarm warns at this share of the function's timeout.
DURATION_ALARM_SHARE = 0.8
# A DLQ's age alarm fires at least this long before SQS deletes the message.
DLQ_AGE_MARGIN_SECONDS = 24 * 3600


# ----------------------------------------------------------------- alarms
def alarms(template: dict) -> dict[str, dict]:
    return resources(template, "AWS::CloudWatch::Alarm")


def _dimensions(value: Any) -> dict[str, Any]:
    return {d.get("Name"): d.get("Value") for d in as_list(value) if isinstance(d, dict)}


def alarm_dimension(alarm: dict, name: str) -> Any:
    return _dimensions(props(alarm).get("Dimensions")).get(name)


def alarms_on(template: dict, namespace: str, metric: str) -> list[tuple[str, dict]]:
    """Single-metric alarms on a metric."""
    return [
        (name, alarm)
        for name, alarm in alarms(template).items()
        if props(alarm).get("Namespace") == namespace and props(alarm).get("MetricName") == metric
    ]


def math_metrics(alarm: dict) -> dict[str, dict]:
    """A metric math alarm's metrics by id: {id: {namespace, metric, dimensions, stat}}."""
    found = {}
    for entry in as_list(props(alarm).get("Metrics")):
        stat = entry.get("MetricStat") if isinstance(entry, dict) else None
        if isinstance(stat, dict) and isinstance(stat.get("Metric"), dict):
            metric = stat["Metric"]
            found[entry.get("Id")] = {
                "namespace": metric.get("Namespace"),
                "metric": metric.get("MetricName"),
                "dimensions": _dimensions(metric.get("Dimensions")),
                "stat": stat.get("Stat"),
            }
    return found


def math_expression(alarm: dict) -> str | None:
    """The expression a metric math alarm compares with its threshold (the one entry with ReturnData true)."""
    for entry in as_list(props(alarm).get("Metrics")):
        if isinstance(entry, dict) and "Expression" in entry and truthy(entry.get("ReturnData")):
            return entry["Expression"] if isinstance(entry["Expression"], str) else None
    return None


def _compact(expression: str | None) -> str:
    return re.sub(r"\s+", "", expression or "")


def math_alarms_on(template: dict, namespace: str, dimension: str, wanted: Any) -> list[tuple[str, dict, dict[str, str]]]:
    """Metric math alarms whose metrics are in a namespace with this dimension
    value, as (name, alarm, {metric name: id})."""
    found = []
    for name, alarm in alarms(template).items():
        metrics = math_metrics(alarm)
        if metrics and all(m["namespace"] == namespace and m["dimensions"].get(dimension) == wanted for m in metrics.values()):
            found.append((name, alarm, {m["metric"]: mid for mid, m in metrics.items()}))
    return found


def _fires_above_zero(template: dict, alarm: dict) -> bool:
    p = props(alarm)
    threshold = resolve_number(template, p.get("Threshold"), "max")
    op = p.get("ComparisonOperator")
    return (op == "GreaterThanThreshold" and threshold == 0) or (
        op == "GreaterThanOrEqualToThreshold" and threshold == 1
    )


def errors_alarms(template: dict, fname: str, metric: str = "Errors") -> list[str]:
    """The alarms on a function's Lambda Errors (or another metric) > 0."""
    return [
        name for name, a in alarms_on(template, "AWS/Lambda", metric)
        if is_ref(alarm_dimension(a, "FunctionName"), fname) and _fires_above_zero(template, a)
    ]


def permanent_failure_alarms(template: dict, fname: str) -> list[str]:
    """The alarms on FILL(RecordsFailedPermanent, 0) + FILL(RecordsDeadLettered, 0) > 0 of a function."""
    found = []
    for name, alarm, ids in math_alarms_on(template, SQS_KIT_NAMESPACE, "FunctionName", {"Ref": fname}):
        if set(ids) != set(PERMANENT_COUNTS) or not _fires_above_zero(template, alarm):
            continue
        permanent, dead_lettered = ids["RecordsFailedPermanent"], ids["RecordsDeadLettered"]
        if _compact(math_expression(alarm)) in {f"FILL({permanent},0)+FILL({dead_lettered},0)", f"FILL({dead_lettered},0)+FILL({permanent},0)"}:
            found.append(name)
    return found


def transient_rate_alarms(template: dict, fname: str) -> list[str]:
    """The alarms on 100 x RecordsFailedTransient / (all six counts) of a function."""
    found = []
    for name, alarm, ids in math_alarms_on(template, SQS_KIT_NAMESPACE, "FunctionName", {"Ref": fname}):
        if set(ids) != set(RECORD_COUNTS):
            continue
        match = re.fullmatch(r"100\*(\w+)/\((\w+(?:\+\w+)*)\)", _compact(math_expression(alarm)))
        if match and match[1] == ids["RecordsFailedTransient"] and sorted(match[2].split("+")) == sorted(ids.values()):
            found.append(name)
    return found


def dlq_new_message_alarms(template: dict, dname: str) -> list[str]:
    """The alarms on DIFF(FILL(depth, 0)) > 0 of a queue, over at least two periods."""
    found = []
    for name, alarm, ids in math_alarms_on(template, "AWS/SQS", "QueueName", {"Fn::GetAtt": [dname, "QueueName"]}):
        if list(ids) != ["ApproximateNumberOfMessagesVisible"] or not _fires_above_zero(template, alarm):
            continue
        depth = ids["ApproximateNumberOfMessagesVisible"]
        if math_metrics(alarm)[depth]["stat"] == "Maximum" and _compact(math_expression(alarm)) == f"DIFF(FILL({depth},0))":
            found.append(name)
    return found


def _ok_actions(name: str, alarm: dict, wanted: bool) -> list[str]:
    p = props(alarm)
    if wanted and p.get("OKActions") != p.get("AlarmActions"):
        return [f"{name}: OKActions should notify what AlarmActions does: its return to OK means the condition is over"]
    if not wanted and p.get("OKActions"):
        return [f"{name}: no OKActions: it alarms on events and returns to OK by itself a minute later"]
    return []


def check_alarms(template: dict) -> list[str]:
    """The alarms an on-call engineer needs (docs/deploy.md, runbook), each
    named after the stack, described, notifying the alarm topic."""
    problems = []
    topics = resources(template, "AWS::SNS::Topic")
    names: dict[str, str] = {}
    for name, alarm in alarms(template).items():
        p = props(alarm)
        pattern = sub_string(p.get("AlarmName"))
        if pattern is None or not pattern.startswith(ALARM_NAME_PREFIX) or sub_references(p.get("AlarmName")) != {"AWS::StackName"}:
            problems.append(f'{name}: AlarmName should be !Sub "{ALARM_NAME_PREFIX}<what>" (the runbook in docs/deploy.md is by name)')
        else:
            suffix = pattern.removeprefix(ALARM_NAME_PREFIX)
            if suffix in names:
                problems.append(f"{name}: AlarmName <stack>-{suffix} is also {names[suffix]}'s")
            names[suffix] = name
            description = p.get("AlarmDescription")
            if not isinstance(description, str) or f"runbook {suffix})" not in description or "First:" not in description:
                problems.append(
                    f"{name}: AlarmDescription should say what it means, what to do first (\"First: ...\") "
                    f"and end with its runbook entry (\"docs/deploy.md, runbook {suffix})\")"
                )
        if p.get("TreatMissingData") != "notBreaching":
            problems.append(f"{name}: TreatMissingData should be notBreaching")
        if not any(ref_target(a) in topics for a in as_list(p.get("AlarmActions"))):
            problems.append(f"{name}: AlarmActions should notify an SNS topic of this template")

    def one(what: str, found: list[str], ok: bool) -> None:
        if not found:
            problems.append(f"{what}")
        for name in found:
            problems.extend(_ok_actions(name, alarms(template)[name], ok))

    for fname, function in resources(template, "AWS::Serverless::Function").items():
        one(f"{fname} has no Errors > 0 alarm", errors_alarms(template, fname), True)
        one(f"{fname} has no Throttles > 0 alarm", errors_alarms(template, fname, "Throttles"), True)
        one(
            f"{fname} has no FILL(RecordsFailedPermanent, 0) + FILL(RecordsDeadLettered, 0) > 0 alarm (SqsKit, FunctionName !Ref {fname})",
            permanent_failure_alarms(template, fname),
            False,
        )
        rates = transient_rate_alarms(template, fname)
        one(f"{fname} has no 100 * RecordsFailedTransient / (all six record counts) alarm (SqsKit, FunctionName !Ref {fname})", rates, True)
        for name in rates:
            threshold = props(alarms(template)[name]).get("Threshold")
            low, high = resolve_number(template, threshold, "min"), resolve_number(template, threshold, "max")
            if ref_target(threshold) not in template.get("Parameters", {}) or low is None or high is None or low < 1 or high > 100:
                problems.append(f"{name}: the threshold should be a parameter of 1 to 100 (percent), is {threshold}")
        durations = [
            name for name, a in alarms_on(template, "AWS/Lambda", "Duration")
            if is_ref(alarm_dimension(a, "FunctionName"), fname) and props(a).get("ExtendedStatistic") == "p99"
        ]
        one(f"{fname} has no Duration p99 alarm", durations, True)
        timeout = resolve_number(template, function_property(template, function, "Timeout", LAMBDA_DEFAULT_TIMEOUT), "max")
        for name in durations:
            threshold = resolve_number(template, props(alarms(template)[name]).get("Threshold"), "max")
            wanted = None if timeout is None else DURATION_ALARM_SHARE * timeout * 1000
            if threshold is None or wanted is None or threshold != wanted:
                problems.append(f"{name}: threshold {threshold} ms should be {DURATION_ALARM_SHARE:.0%} of {fname}'s timeout ({wanted} ms)")

    for fname, function, _, qname, _, _ in pairs(template):
        age = [name for name, a in alarms_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage") if is_getatt(alarm_dimension(a, "QueueName"), qname, "QueueName")]
        one(f"{qname} has no ApproximateAgeOfOldestMessage alarm", age, True)
        for name in age:
            if ref_target(props(alarms(template)[name]).get("Threshold")) not in template.get("Parameters", {}):
                problems.append(f"{qname}: the age-of-oldest-message threshold should be a parameter")

    queues = resources(template, "AWS::SQS::Queue")
    for dname, what in dead_letter_queues(template).items():
        one(f"{dname} ({what}) has no DIFF(FILL(ApproximateNumberOfMessagesVisible, 0)) > 0 alarm over 2 or more periods", [
            name for name in dlq_new_message_alarms(template, dname)
            if (resolve_number(template, props(alarms(template)[name]).get("EvaluationPeriods"), "min") or 0) >= 2
        ], False)
        age = [name for name, a in alarms_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage") if is_getatt(alarm_dimension(a, "QueueName"), dname, "QueueName")]
        one(f"{dname} ({what}) has no ApproximateAgeOfOldestMessage alarm", age, True)
        retention = _number(props(queues[dname]).get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION_SECONDS))
        for name in age:
            threshold = resolve_number(template, props(alarms(template)[name]).get("Threshold"), "max")
            if threshold is None or retention is None or threshold > retention - DLQ_AGE_MARGIN_SECONDS:
                problems.append(
                    f"{name}: the threshold can be {threshold} s; it should be at most {retention} - {DLQ_AGE_MARGIN_SECONDS} s, "
                    f"a day before {dname}'s retention ends"
                )

    # Deliveries that fail even to a subscription's DLQ are lost.
    for tname in {ref_target(props(s).get("TopicArn")) for s in resources(template, "AWS::SNS::Subscription").values() if props(s).get("RedrivePolicy")}:
        found = [
            name for name, a in alarms_on(template, "AWS/SNS", "NumberOfNotificationsFailedToRedriveToDlq")
            if is_getatt(alarm_dimension(a, "TopicName"), str(tname), "TopicName") and _fires_above_zero(template, a)
        ]
        one(f"{tname} has no NumberOfNotificationsFailedToRedriveToDlq > 0 alarm", found, False)

    # CloudWatch can only publish to an encrypted topic whose key lets it.
    keys = resources(template, "AWS::KMS::Key")
    alarm_topics = {ref_target(a) for al in alarms(template).values() for a in as_list(props(al).get("AlarmActions"))}
    for tname in alarm_topics & set(topics):
        key = ref_target(props(topics[tname]).get("KmsMasterKeyId"))
        if key in keys and not _key_allows_service(keys[key], "cloudwatch.amazonaws.com"):
            problems.append(f"{tname}: its KMS key {key} must let cloudwatch.amazonaws.com kms:GenerateDataKey* and kms:Decrypt")
    return problems


# The alarm shapes `sqs-kit local alarms` evaluates (and nothing else).
_ALARM_KEYS = {"AlarmName", "AlarmDescription", "AlarmActions", "OKActions", "EvaluationPeriods", "DatapointsToAlarm",
               "Threshold", "ComparisonOperator", "TreatMissingData"}
_SINGLE_KEYS = _ALARM_KEYS | {"Namespace", "MetricName", "Dimensions", "Statistic", "ExtendedStatistic", "Period"}
_MATH_KEYS = _ALARM_KEYS | {"Metrics"}
_TOKEN = re.compile(r"\s*(?:(?P<number>[0-9]+(?:\.[0-9]+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>>=|<=|[-+*/(),\[\]<>]))")


class ExpressionError(ValueError):
    """An expression outside the metric math the local evaluator reads."""


def expression_ids(expression: str) -> set[str]:
    """The metric ids an expression uses; ExpressionError unless it is built
    only from ids, numbers, + - * /, parentheses, FILL(x, 0), DIFF(x),
    MAX([x, ...]) and IF(a OP b, x, y) with OP one of > >= < <=."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression.rstrip()):
        match = _TOKEN.match(expression, position)
        if not match:
            raise ExpressionError(f"unexpected {expression[position:].strip()[:10]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match[kind]))
        position = match.end()
    ids: set[str] = set()
    at = 0

    def peek() -> str | None:
        return tokens[at][1] if at < len(tokens) else None

    def take(wanted: str | None = None) -> tuple[str, str]:
        nonlocal at
        if at >= len(tokens):
            raise ExpressionError(f"ends where {wanted or 'a value'} should follow")
        token = tokens[at]
        if wanted is not None and token[1] != wanted:
            raise ExpressionError(f"{token[1]!r} where {wanted!r} should be")
        at += 1
        return token

    def sum_() -> None:
        product()
        while peek() in ("+", "-"):
            take()
            product()

    def product() -> None:
        value()
        while peek() in ("*", "/"):
            take()
            value()

    def value() -> None:
        kind, text = take()
        if kind == "number":
            return
        if text == "(":
            sum_()
            take(")")
        elif text == "FILL":
            take("(")
            sum_()
            take(",")
            if take()[1] != "0":
                raise ExpressionError("FILL fills with 0 only")
            take(")")
        elif text == "DIFF":
            take("(")
            sum_()
            take(")")
        elif text == "MAX":
            take("(")
            take("[")
            sum_()
            while peek() == ",":
                take()
                sum_()
            take("]")
            take(")")
        elif text == "IF":
            take("(")
            sum_()
            if peek() not in (">", ">=", "<", "<="):
                raise ExpressionError("IF's condition should compare with > >= < or <=")
            take()
            sum_()
            take(",")
            sum_()
            take(",")
            sum_()
            take(")")
        elif kind == "name" and METRIC_ID.match(text) and peek() != "(":
            ids.add(text)
        else:
            raise ExpressionError(f"{text!r} is not an id, a number or FILL, DIFF, MAX, IF")

    sum_()
    if at != len(tokens):
        raise ExpressionError(f"{tokens[at][1]!r} after the end of the expression")
    return ids


def check_alarm_shapes(template: dict) -> list[str]:
    """Every alarm is one metric or metric math of the shapes the local
    evaluator (`sqs-kit local alarms`) reads."""
    problems = []
    for name, alarm in alarms(template).items():
        p = props(alarm)
        if p.get("ComparisonOperator") not in COMPARISONS:
            problems.append(f"{name}: ComparisonOperator {p.get('ComparisonOperator')} is not one of {sorted(COMPARISONS)}")
        for key in ("EvaluationPeriods", "Threshold", "TreatMissingData"):
            if key not in p:
                problems.append(f"{name}: {key} is missing")
        if "Metrics" not in p:
            for key in sorted(set(p) - _SINGLE_KEYS):
                problems.append(f"{name}: {key} is not part of a single-metric alarm the local evaluator reads")
            for key in ("Namespace", "MetricName", "Dimensions", "Period"):
                if key not in p:
                    problems.append(f"{name}: {key} is missing")
            statistic, extended = p.get("Statistic"), p.get("ExtendedStatistic")
            if not ((statistic in STATISTICS and extended is None) or (statistic is None and isinstance(extended, str) and EXTENDED_STATISTIC.match(extended))):
                problems.append(f"{name}: needs a Statistic of {sorted(STATISTICS)} or an ExtendedStatistic pNN, not both")
            continue
        for key in sorted(set(p) - _MATH_KEYS):
            problems.append(f"{name}: {key} is not part of a metric math alarm the local evaluator reads")
        metrics, expressions = [], []
        for entry in as_list(p.get("Metrics")):
            if not isinstance(entry, dict) or not isinstance(entry.get("Id"), str) or not METRIC_ID.match(entry["Id"]):
                problems.append(f"{name}: every Metrics entry needs an Id (a lower-case letter, then letters, digits, _)")
                continue
            if "Expression" in entry:
                expressions.append(entry)
                continue
            stat = entry.get("MetricStat")
            metric = stat.get("Metric") if isinstance(stat, dict) else None
            if (
                set(entry) != {"Id", "MetricStat", "ReturnData"} or entry.get("ReturnData") is not False
                or not isinstance(stat, dict) or set(stat) != {"Metric", "Period", "Stat"} or stat.get("Stat") not in STATISTICS
                or not isinstance(metric, dict) or set(metric) != {"Namespace", "MetricName", "Dimensions"}
            ):
                problems.append(
                    f"{name}: metric {entry['Id']} should be {{Id, MetricStat: {{Metric: {{Namespace, MetricName, Dimensions}}, "
                    f"Period, Stat ({'|'.join(sorted(STATISTICS))})}}, ReturnData: false}}"
                )
            metrics.append(entry["Id"])
        if len(expressions) != 1 or set(expressions[0]) != {"Id", "Expression", "ReturnData"} or expressions[0].get("ReturnData") is not True:
            problems.append(f"{name}: needs exactly one {{Id, Expression, ReturnData: true}} entry")
            continue
        if len(set(metrics)) != len(metrics) or expressions[0]["Id"] in metrics:
            problems.append(f"{name}: the Metrics ids should be unique")
        try:
            used = expression_ids(str(expressions[0]["Expression"]))
        except ExpressionError as err:
            problems.append(f"{name}: expression {expressions[0]['Expression']!r}: {err}")
            continue
        if used != set(metrics):
            problems.append(f"{name}: the expression should use exactly its metrics {sorted(metrics)}, uses {sorted(used)}")
    return problems


def _key_allows_service(key: dict, service: str) -> bool:
    needed = {"kms:decrypt", "kms:generatedatakey*"}
    granted: set[str] = set()
    for st in as_list((props(key).get("KeyPolicy") or {}).get("Statement")):
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal") or {}
        if isinstance(principal, dict) and service in as_list(principal.get("Service")):
            granted |= {str(a).lower() for a in as_list(st.get("Action"))}
    return needed <= granted or "kms:*" in granted


def check_encryption(template: dict) -> list[str]:
    problems = []
    for qname, queue in resources(template, "AWS::SQS::Queue").items():
        p = props(queue)
        if not (truthy(p.get("SqsManagedSseEnabled")) or p.get("KmsMasterKeyId")):
            problems.append(f"{qname}: not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)")
    for tname, topic in resources(template, "AWS::SNS::Topic").items():
        if not props(topic).get("KmsMasterKeyId"):
            problems.append(f"{tname}: not encrypted (KmsMasterKeyId)")
    for name, table in resources(template, "AWS::DynamoDB::Table").items():
        p = props(table)
        if not truthy((p.get("SSESpecification") or {}).get("SSEEnabled")):
            problems.append(f"{name}: SSESpecification.SSEEnabled should be true")
        if p.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{name}: BillingMode should be PAY_PER_REQUEST")
        if not truthy((p.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")):
            problems.append(f"{name}: point-in-time recovery should be enabled")
    return problems


def check_fan_out(template: dict) -> list[str]:
    """FIFO topic, raw delivery to every main queue, queue policies that let
    only the topic send."""
    problems = []
    topics = resources(template, "AWS::SNS::Topic")
    subs = resources(template, "AWS::SNS::Subscription")
    policies = resources(template, "AWS::SQS::QueuePolicy")
    queues = resources(template, "AWS::SQS::Queue")
    for fname, _, _, qname, queue, _ in pairs(template):
        mine = [
            (sname, s) for sname, s in subs.items()
            if props(s).get("Protocol") == "sqs" and is_getatt(props(s).get("Endpoint"), qname, "Arn")
        ]
        if len(mine) != 1:
            problems.append(f"{qname}: expected one SNS subscription, found {len(mine)}")
            continue
        sname, sub = mine[0]
        sp = props(sub)
        tname = ref_target(sp.get("TopicArn"))
        if tname not in topics:
            problems.append(f"{sname}: TopicArn should be !Ref of a topic in this template")
            continue
        tp = props(topics[tname])
        topic_name = sub_string(tp.get("TopicName")) or tp.get("TopicName")
        if not truthy(tp.get("FifoTopic")) or not (isinstance(topic_name, str) and topic_name.endswith(".fifo")):
            problems.append(f"{tname}: should be a FIFO topic named *.fifo")
        if truthy(tp.get("ContentBasedDeduplication")):
            problems.append(f"{tname}: content-based deduplication should be off (publishers set the eventId)")
        if not truthy(sp.get("RawMessageDelivery")):
            problems.append(f"{sname}: RawMessageDelivery should be true")
        redrive = sp.get("RedrivePolicy")
        if isinstance(redrive, dict):
            dlq = ref_target(redrive.get("deadLetterTargetArn"))
            if dlq not in queues or queue_is_fifo(queues[dlq]) != truthy(tp.get("FifoTopic")):
                problems.append(f"{sname}: a subscription DLQ must be a queue of the topic's type (FIFO)")
        # The queue's policy: only this topic may send.
        qpolicies = [p for p in policies.values() if any(is_ref(q, qname) for q in as_list(props(p).get("Queues")))]
        if not qpolicies:
            problems.append(f"{qname}: no AWS::SQS::QueuePolicy lets the topic send")
        for qpolicy in qpolicies:
            for st in as_list((props(qpolicy).get("PolicyDocument") or {}).get("Statement")):
                if not isinstance(st, dict) or st.get("Effect") != "Allow":
                    continue
                condition = (st.get("Condition") or {}).get("ArnEquals") or (st.get("Condition") or {}).get("ArnLike") or {}
                source = condition.get("aws:SourceArn")
                if not is_ref(source, tname):
                    problems.append(f"{qname}: queue policy statement {st.get('Sid', '')!r} is not limited to aws:SourceArn = {tname}")
                if as_list((st.get("Principal") or {}).get("Service")) != ["sns.amazonaws.com"]:
                    problems.append(f"{qname}: queue policy statement {st.get('Sid', '')!r} should allow only sns.amazonaws.com")
    return problems


def _role_statements(
    template: dict, role_name: str, conditions: dict[str, bool] | None = None
) -> tuple[list[dict], list[str]]:
    """The statements attached to a role in this template, and problems: those
    that apply under ``conditions`` (see ``select``; None: every statement in
    any branch). A policy resource whose Condition is false attaches none."""
    problems = []
    role = resources(template, "AWS::IAM::Role")[role_name]
    rp = select(props(role), conditions)
    if rp.get("ManagedPolicyArns"):
        problems.append(f"{role_name}: ManagedPolicyArns are not allowed (their statements cannot be checked)")

    def applies(resource: dict) -> bool:
        return conditions is None or "Condition" not in resource or conditions[resource["Condition"]]

    statements = []
    for policy in as_list(rp.get("Policies")):
        statements += as_list((policy.get("PolicyDocument") or {}).get("Statement"))
    for pname, policy in resources(template, "AWS::IAM::RolePolicy").items():
        if is_ref(props(policy).get("RoleName"), role_name) and applies(policy):
            statements += as_list((select(props(policy), conditions).get("PolicyDocument") or {}).get("Statement"))
    for pname, policy in resources(template, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy").items():
        if any(is_ref(r, role_name) for r in as_list(props(policy).get("Roles"))) and applies(policy):
            statements += as_list((select(props(policy), conditions).get("PolicyDocument") or {}).get("Statement"))
    return statements, problems


def _resource_is_named(value: Any, template: dict) -> bool:
    """A resource given as a reference to something of this template, or an
    ARN (literal or !Sub) without wildcards."""
    if ref_target(value) is not None:
        target = ref_target(value)
        return target in template.get("Resources", {}) or target in template.get("Parameters", {})
    pattern = sub_string(value)
    if pattern is None and isinstance(value, str):
        pattern = value
    return isinstance(pattern, str) and pattern.startswith("arn:") and "*" not in pattern and "?" not in pattern


SQS_POLLER_ACTIONS = frozenset({"sqs:receivemessage", "sqs:deletemessage", "sqs:getqueueattributes"})


def granted_actions(template: dict, function_name: str, parameters: dict[str, str] | None = None) -> dict[str, set[str]]:
    """What a function's role allows with these parameter values (the others at
    their defaults), as {logical id (or the literal resource): actions}
    (actions lower-cased). Empty when the function has no role of this template."""
    function = resources(template, "AWS::Serverless::Function")[function_name]
    role_name = ref_target(props(function).get("Role"))
    if role_name not in resources(template, "AWS::IAM::Role"):
        return {}
    conditions = evaluate_conditions(template, parameter_values(template, parameters))
    grants: dict[str, set[str]] = {}
    for st in _role_statements(template, role_name, conditions)[0]:
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        actions = {str(a).lower() for a in as_list(st.get("Action"))}
        for value in as_list(st.get("Resource")):
            key = ref_target(value) or (sub_string(value) or str(value))
            grants.setdefault(key, set()).update(actions)
    return grants


def check_least_privilege(template: dict) -> list[str]:
    problems = []
    roles = resources(template, "AWS::IAM::Role")
    tables = resources(template, "AWS::DynamoDB::Table")
    log_groups = resources(template, "AWS::Logs::LogGroup")
    own_queues: dict[str, set[str]] = {}
    own_dlqs: dict[str, set[str]] = {}
    for fname, _, _, qname, queue, _ in pairs(template):
        own_queues.setdefault(fname, set()).add(qname)
        if redrive_target(queue) is not None:
            own_dlqs.setdefault(fname, set()).add(redrive_target(queue))

    for fname, function in resources(template, "AWS::Serverless::Function").items():
        role_value = props(function).get("Role")
        role_name = ref_target(role_value)
        if role_value is None:
            problems.append(
                f"{fname}: needs its own Role; the role SAM generates for an SQS event gets "
                "AWSLambdaSQSQueueExecutionRole (sqs:ReceiveMessage/DeleteMessage on Resource '*')"
            )
            continue
        if role_name not in roles:
            problems.append(f"{fname}: Role should be !GetAtt <role>.Arn of a role in this template")
            continue
        if props(function).get("Policies"):
            problems.append(f"{fname}: Policies are ignored when Role is set; put them on {role_name}")
        env_tables = {ref_target(v) for v in function_env(template, function).values()} & set(tables)
        my_logs = {own_log_group(function)} & set(log_groups)
        statements, role_problems = _role_statements(template, role_name)
        problems += [f"{fname}: {p}" for p in role_problems]
        if not statements:
            problems.append(f"{fname}: role {role_name} grants nothing (it cannot even poll its queue)")
        for st in statements:
            if not isinstance(st, dict) or st.get("Effect") != "Allow":
                continue
            if "NotAction" in st or "NotResource" in st:
                problems.append(f"{fname}: NotAction/NotResource are not allowed in {role_name}")
                continue
            actions = [str(a).lower() for a in as_list(st.get("Action"))]
            resource_values = as_list(st.get("Resource"))
            for action in actions:
                if "*" in action or "?" in action:
                    problems.append(f"{fname}: wildcard action {action!r} in {role_name}")
            if any(r == "*" for r in resource_values):
                if not set(actions) <= RESOURCELESS_ACTIONS:
                    problems.append(f"{fname}: Resource '*' for {sorted(set(actions) - RESOURCELESS_ACTIONS)} in {role_name}")
                continue
            for value in resource_values:
                if not _resource_is_named(value, template):
                    problems.append(f"{fname}: resource {value!r} in {role_name} is not a named resource")
            targets = {ref_target(v) for v in resource_values}
            services = {a.split(":", 1)[0] for a in actions}
            # A function forwarding a permanent failure sends it to its own DLQ; that is all it may do there.
            sqs_actions = {a for a in actions if a.startswith("sqs:")}
            mine = own_queues.get(fname, set()) | (own_dlqs.get(fname, set()) if sqs_actions == {"sqs:sendmessage"} else set())
            if sqs_actions and not targets <= mine:
                problems.append(
                    f"{fname}: SQS permissions should name only its own queue (and sqs:SendMessage its own DLQ), "
                    f"not {sorted(map(str, targets))} for {sorted(sqs_actions)}"
                )
            if "dynamodb" in services and not targets <= env_tables:
                problems.append(
                    f"{fname}: DynamoDB permissions should name only the tables in its environment "
                    f"{sorted(env_tables)}, not {sorted(map(str, targets - env_tables))}"
                )
            if "logs" in services and not targets <= my_logs:
                problems.append(f"{fname}: CloudWatch Logs permissions should name only its own log group")
        # ...and enough: Lambda refuses an SQS event source mapping whose
        # role cannot poll the queue (checked with the parameters' defaults).
        grants = granted_actions(template, fname)
        for qname in own_queues.get(fname, set()):
            missing = SQS_POLLER_ACTIONS - grants.get(qname, set())
            if missing:
                problems.append(f"{fname}: its role lacks {sorted(missing)} on {qname}")
    return problems


# ----------------------------------------------------------------- logging, rollouts, data, paging
def own_log_group(function: dict) -> str | None:
    """The log group a function's LoggingConfig names (!Ref), else None."""
    return ref_target((props(function).get("LoggingConfig") or {}).get("LogGroup"))


def check_logging(template: dict) -> list[str]:
    """JSON logs into a log group of the template, named up front, with the
    retention parameter; nothing filtered by Lambda (LOG_LEVEL decides, and the
    embedded-metric lines, which Lambda counts as INFO, always get through)."""
    problems = []
    log_groups = resources(template, "AWS::Logs::LogGroup")
    owners: dict[str, str] = {}
    for fname, function in resources(template, "AWS::Serverless::Function").items():
        config = props(function).get("LoggingConfig")
        group = own_log_group(function)
        if not isinstance(config, dict) or group not in log_groups:
            problems.append(f"{fname}: LoggingConfig.LogGroup should be !Ref of a log group of this template")
            continue
        if group in owners:
            problems.append(f"{fname}: log group {group} is also {owners[group]}'s")
        owners[group] = fname
        if config.get("LogFormat") != "JSON":
            problems.append(f"{fname}: LoggingConfig.LogFormat should be JSON")
        if config.get("ApplicationLogLevel") != "TRACE":
            problems.append(
                f"{fname}: LoggingConfig.ApplicationLogLevel should be TRACE: a higher level would drop the function's "
                "TRACE/DEBUG lines, and above INFO its embedded-metric lines too (the alarms' data)"
            )
    for name, group in log_groups.items():
        p = props(group)
        if name not in owners:
            problems.append(f"{name}: no function's LoggingConfig names this log group")
        if sub_references(p.get("LogGroupName")) != {"AWS::StackName"}:
            problems.append(f"{name}: LogGroupName should be !Sub of the stack name only (named up front, not after the function)")
        if not is_ref(p.get("RetentionInDays"), "LogRetentionDays"):
            problems.append(f"{name}: RetentionInDays should be !Ref LogRetentionDays")
    return problems


GRADUAL_DEPLOYMENTS = frozenset(
    f"{kind}10Percent{step}"
    for kind, steps in (("Canary", ("5Minutes", "10Minutes", "15Minutes", "30Minutes")), ("Linear", ("Every1Minute", "Every2Minutes", "Every3Minutes", "Every10Minutes")))
    for step in steps
)


def check_deployment(template: dict) -> list[str]:
    """Each function rolls out through an alias (which SAM points its event
    source mappings at) with a canary or linear CodeDeploy deployment that
    rolls back on its Errors and failed-record alarms."""
    problems = []
    for fname, function in resources(template, "AWS::Serverless::Function").items():
        alias = function_property(template, function, "AutoPublishAlias")
        if not isinstance(alias, str) or not alias:
            problems.append(f"{fname}: AutoPublishAlias should name the alias its event source mapping invokes")
        if not truthy(function_property(template, function, "AutoPublishAliasAllProperties")):
            problems.append(f"{fname}: AutoPublishAliasAllProperties should be true (a new version for any change, the timeout's too)")
        preference = function_property(template, function, "DeploymentPreference")
        if not isinstance(preference, dict) or preference.get("Type") not in GRADUAL_DEPLOYMENTS or preference.get("Enabled") is False:
            problems.append(f"{fname}: DeploymentPreference.Type should be a canary or linear deployment ({sorted(GRADUAL_DEPLOYMENTS)[0]}, ...)")
            continue
        rollback = {ref_target(a) for a in as_list(preference.get("Alarms"))}
        if not rollback <= set(alarms(template)):
            problems.append(f"{fname}: DeploymentPreference.Alarms should be !Ref of alarms of this template")
        for what, candidates in (
            ("Errors", errors_alarms(template, fname)),
            ("permanent failures", permanent_failure_alarms(template, fname)),
            ("transient failure rate", transient_rate_alarms(template, fname)),
        ):
            if not rollback & set(candidates):
                problems.append(f"{fname}: DeploymentPreference.Alarms should include its {what} alarm, so a bad version rolls back")
    return problems


def idempotency_tables(template: dict) -> set[str]:
    """The tables the functions' IDEMPOTENCY_TABLE names."""
    return {
        ref_target(function_env(template, f).get("IDEMPOTENCY_TABLE"))
        for f in resources(template, "AWS::Serverless::Function").values()
    } - {None}


def check_data_safety(template: dict) -> list[str]:
    """Business tables (every table but the idempotency store) survive a stack
    deletion, a replacement and a stray DeleteTable."""
    problems = []
    business = {n: t for n, t in resources(template, "AWS::DynamoDB::Table").items() if n not in idempotency_tables(template)}
    if not business:
        problems.append("the template has no business table (only the idempotency table)")
    for name, table in business.items():
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if table.get(policy) != "Retain":
                problems.append(f"{name}: {policy} should be Retain (it holds business data)")
        if not truthy(props(table).get("DeletionProtectionEnabled")):
            problems.append(f"{name}: DeletionProtectionEnabled should be true (it holds business data)")
    return problems


EMAIL_PATTERN = "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$"


def check_paging(template: dict) -> list[str]:
    """Someone gets the alarms: the alarm e-mail has no default (the first
    deploy must be given one) and is subscribed to the alarm topic, always."""
    problems = []
    email = parameter(template, "AlarmEmail")
    if email is None:
        return ["parameter AlarmEmail is missing"]
    if "Default" in email:
        problems.append("parameter AlarmEmail should have no Default, so that the first deploy asks for it")
    if email.get("AllowedPattern") != EMAIL_PATTERN:
        problems.append(f"parameter AlarmEmail should allow only e-mail addresses (AllowedPattern {EMAIL_PATTERN})")
    alarm_topics = {ref_target(a) for al in alarms(template).values() for a in as_list(props(al).get("AlarmActions"))}
    for tname in sorted(alarm_topics - {None}):
        subscribed = [
            name for name, s in resources(template, "AWS::SNS::Subscription").items()
            if is_ref(props(s).get("TopicArn"), tname) and props(s).get("Protocol") == "email"
            and is_ref(props(s).get("Endpoint"), "AlarmEmail") and "Condition" not in s
        ]
        if not subscribed:
            problems.append(f"{tname}: no unconditional e-mail subscription of !Ref AlarmEmail: its alarms would reach nobody")
    return problems


# POINTS_RATE as functions/points/src/rate.rs parses it: up to 9 digits, then
# optionally a point and up to 9 decimal places.
POINTS_RATE_PATTERN = "^[0-9]{1,9}(\\.[0-9]{1,9})?$"


def check_parameters(template: dict) -> list[str]:
    """Each parameter's default is a value CloudFormation accepts for it, and
    PointsRate allows what the points function accepts."""
    problems = []
    for name, spec in template.get("Parameters", {}).items():
        if not isinstance(spec, dict) or "Default" not in spec:
            continue
        default = str(spec["Default"])
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], default):
            problems.append(f"parameter {name}: Default {default!r} does not match its AllowedPattern")
        if "AllowedValues" in spec and default not in [str(v) for v in spec["AllowedValues"]]:
            problems.append(f"parameter {name}: Default {default!r} is not one of its AllowedValues")
        number = _number(spec["Default"]) if spec.get("Type") == "Number" else None
        for bound, outside in (("MinValue", lambda n, b: n < b), ("MaxValue", lambda n, b: n > b)):
            limit = _number(spec.get(bound))
            if number is not None and limit is not None and outside(number, limit):
                problems.append(f"parameter {name}: Default {default} is outside its {bound} {spec[bound]}")
    rate = parameter(template, "PointsRate")
    if rate is None or rate.get("AllowedPattern") != POINTS_RATE_PATTERN:
        problems.append(f"parameter PointsRate should allow what the points function parses (AllowedPattern {POINTS_RATE_PATTERN})")
    return problems


# The longest stack name every name built from it fits: `<stack>-inventory`
# must fit Lambda's 64-character function names (docs/deploy.md).
STACK_NAME_LIMIT = 54
NAME_LIMITS = {
    ("AWS::Serverless::Function", "FunctionName"): 64,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::SNS::Topic", "TopicName"): 256,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::KMS::Alias", "AliasName"): 256,
    ("AWS::DynamoDB::Table", "TableName"): 255,
}


def _name_lengths(template: dict) -> Iterator[tuple[str, str, str | None, int]]:
    """(resource, property, pattern or None, the service's limit) of every name the template sets."""
    for (rtype, prop), limit in NAME_LIMITS.items():
        for name, resource in resources(template, rtype).items():
            value = props(resource).get(prop)
            if value is not None:
                pattern = value if isinstance(value, str) else sub_string(value)
                if pattern is not None and SUB_VARIABLE.findall(pattern) not in ([], ["AWS::StackName"]):
                    pattern = None
                yield name, prop, pattern, limit


def stack_name_limit(template: dict) -> int:
    """The longest stack name with which every name fits its service's limit."""
    return min(limit - len(pattern.replace("${AWS::StackName}", "")) for _, _, pattern, limit in _name_lengths(template) if pattern)


def check_name_lengths(template: dict) -> list[str]:
    """With a stack name of STACK_NAME_LIMIT characters, every name the
    template builds from it fits its service's limit (CloudFormation cannot
    measure the stack name: docs/deploy.md gives the limit)."""
    problems = []
    for name, prop, pattern, limit in _name_lengths(template):
        if pattern is None:
            problems.append(f"{name}.{prop}: build it from the stack name only (a literal or !Sub of ${{AWS::StackName}}), so its length is known")
            continue
        length = len(pattern.replace("${AWS::StackName}", "x" * STACK_NAME_LIMIT))
        if length > limit:
            problems.append(
                f"{name}.{prop}: with a {STACK_NAME_LIMIT}-character stack name it is {length} characters, over the {limit} allowed; "
                "shorten it or lower STACK_NAME_LIMIT and the limit in docs/deploy.md"
            )
    return problems


# ----------------------------------------------------------------- retry control
# SQS_KIT_BACKOFF as the library accepts it: off, or base=S,cap=S[,jitter=full|none]
# in whole seconds from 1 to 42000 (that base <= cap is the library's to check at
# cold start: a pattern cannot compare two numbers).
_SECONDS = "([1-9][0-9]{0,3}|[1-3][0-9]{4}|4[01][0-9]{3}|42000)"
BACKOFF_PATTERN = f"^(off|base={_SECONDS},cap={_SECONDS}(,jitter=(full|none))?)$"
# A value that turns backoff on, for the scenarios below.
BACKOFF_SPEC = "base=1,cap=900"


def retry_parameters(function_name: str) -> tuple[str, str]:
    """The parameters that turn a function's backoff and dead-letter forwarding on."""
    prefix = function_name.removesuffix("Function")
    return f"{prefix}Backoff", f"{prefix}DeadLetter"


def _granted_on(statements: list, action: str) -> set[str]:
    """Where the statements allow an action: ``Logical.Attribute`` for a GetAtt,
    the value's text otherwise."""
    where = set()
    for st in statements:
        if isinstance(st, dict) and st.get("Effect") == "Allow" and action in {str(a).lower() for a in as_list(st.get("Action"))}:
            for value in as_list(st.get("Resource")):
                att = getatt(value)
                where.add(".".join(att) if att else json.dumps(value, sort_keys=True))
    return where


def check_retry_control(template: dict) -> list[str]:
    """Each function's backoff and dead-letter forwarding: parameters that are
    off by default, the environment the library reads, and the IAM each needs,
    granted exactly when it is on: sqs:ChangeMessageVisibility on its own queue,
    sqs:SendMessage on its own DLQ. Checked for every combination of the
    function's two switches, with the other functions' off and on."""
    problems = []
    switches: dict[str, tuple[str, str]] = {}
    for fname, function, _, qname, queue, _ in pairs(template):
        backoff, dead_letter = retry_parameters(fname)
        b, d = parameter(template, backoff), parameter(template, dead_letter)
        if b is None or d is None:
            problems.append(f"{fname}: parameters {backoff} and {dead_letter} should turn its backoff and dead-letter forwarding on")
            continue
        if str(b.get("Default")) != "off" or b.get("AllowedPattern") != BACKOFF_PATTERN:
            problems.append(f"{backoff}: should default to off and allow what SQS_KIT_BACKOFF accepts (AllowedPattern {BACKOFF_PATTERN})")
        if str(d.get("Default")) != "off" or sorted(str(v) for v in as_list(d.get("AllowedValues"))) != ["off", "on"]:
            problems.append(f"{dead_letter}: should default to off and allow only off and on")
        if not is_ref(function_env(template, function).get("SQS_KIT_BACKOFF"), backoff):
            problems.append(f"{fname}: SQS_KIT_BACKOFF should be !Ref {backoff}")
        switches[fname] = (backoff, dead_letter)

    for fname, function, _, qname, queue, _ in pairs(template):
        role = ref_target(props(function).get("Role"))
        if fname not in switches or role not in resources(template, "AWS::IAM::Role"):
            continue  # reported above, or by check_least_privilege
        backoff, dead_letter = switches[fname]
        dlq = redrive_target(queue)
        for others_on in (False, True):
            for backoff_on in (False, True):
                for forwarding in (False, True):
                    values = {}
                    for other, (other_backoff, other_dead_letter) in switches.items():
                        values[other_backoff] = BACKOFF_SPEC if others_on else "off"
                        values[other_dead_letter] = "on" if others_on else "off"
                    values[backoff] = BACKOFF_SPEC if backoff_on else "off"
                    values[dead_letter] = "on" if forwarding else "off"
                    setting = f"{backoff}={values[backoff]}, {dead_letter}={values[dead_letter]}"
                    setting += ", the other functions' on" if others_on else ""
                    try:
                        conditions = evaluate_conditions(template, parameter_values(template, values))
                    except ValueError as err:
                        return list(dict.fromkeys(problems + [f"Conditions: {err}"]))
                    statements = _role_statements(template, role, conditions)[0]
                    for action, on, want in (
                        ("sqs:changemessagevisibility", backoff_on, f"{qname}.Arn"),
                        ("sqs:sendmessage", forwarding, f"{dlq}.Arn"),
                    ):
                        got = _granted_on(statements, action)
                        if got != ({want} if on else set()):
                            problems.append(
                                f"{fname}: with {setting}, {action} is granted on {sorted(got) or 'nothing'}, "
                                f"want {want if on else 'nothing'}"
                            )
                    forward_to = select(function_env(template, function).get("SQS_KIT_DEAD_LETTER"), conditions)
                    want_env = {"Ref": dlq} if forwarding else "off"
                    if forward_to != want_env:
                        problems.append(f"{fname}: with {setting}, SQS_KIT_DEAD_LETTER is {forward_to!r}, want {want_env!r}")
    return list(dict.fromkeys(problems))


def check_outputs(template: dict) -> list[str]:
    problems = []
    outputs = template.get("Outputs", {})
    referenced = {
        o["Value"]["Ref"]
        for o in outputs.values()
        if isinstance(o, dict) and isinstance(o.get("Value"), dict) and list(o["Value"]) == ["Ref"]
    }
    wanted = set(resources(template, "AWS::SQS::Queue")) | set(resources(template, "AWS::DynamoDB::Table"))
    wanted |= {t for t, topic in resources(template, "AWS::SNS::Topic").items() if truthy(props(topic).get("FifoTopic"))}
    for name in sorted(wanted - referenced):
        problems.append(f"Outputs: nothing outputs !Ref {name}")
    return problems


# ----------------------------------------------------------------- checkov skips
# The checkov checks a resource may skip (``Metadata: checkov: skip:`` with an
# ``id`` and a ``comment``), each on one resource type and only where the
# resource meets the check's aim by other means. Any other skip is a problem:
# fix the finding instead, or add the check here with the reason it does not
# apply (and the condition that keeps the skip honest).
SECRET_NAME = re.compile(r"SECRET|PASSW|TOKEN|KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)


def _only_sqs_events(template: dict, function: dict) -> bool:
    events = props(function).get("Events") or {}
    return bool(events) and all(isinstance(e, dict) and e.get("Type") == "SQS" for e in events.values())


def _sqs_events_capped(template: dict, function: dict) -> bool:
    return _only_sqs_events(template, function) and all(
        isinstance(e.get("ScalingConfig"), dict) and e["ScalingConfig"].get("MaximumConcurrency") is not None
        for _, e in sqs_events(function)
    )


def _no_secret_in_environment(template: dict, function: dict) -> bool:
    return not any(SECRET_NAME.search(name) for name in function_env(template, function))


CHECKOV_SKIPS: dict[str, tuple[str, str, Any]] = {
    # id: (resource type, what must hold for the skip, predicate(template, resource))
    "CKV_AWS_27": (
        "AWS::SQS::Queue",
        "the queue is encrypted with SSE-SQS (SqsManagedSseEnabled: true)",
        lambda t, r: truthy(props(r).get("SqsManagedSseEnabled")),
    ),
    "CKV_AWS_119": (
        "AWS::DynamoDB::Table",
        "the table is encrypted at rest (SSESpecification.SSEEnabled: true)",
        lambda t, r: truthy((props(r).get("SSESpecification") or {}).get("SSEEnabled")),
    ),
    "CKV_AWS_158": (
        "AWS::Logs::LogGroup",
        "(CloudWatch Logs encrypts every log group at rest)",
        lambda t, r: True,
    ),
    "CKV_AWS_116": (
        "AWS::Serverless::Function",
        "the function has only SQS events (no asynchronous invocation, so no function DLQ)",
        _only_sqs_events,
    ),
    "CKV_AWS_115": (
        "AWS::Serverless::Function",
        "the function has only SQS events, each with ScalingConfig.MaximumConcurrency",
        _sqs_events_capped,
    ),
    "CKV_AWS_117": (
        "AWS::Serverless::Function",
        "(the functions reach only AWS public endpoints)",
        lambda t, r: True,
    ),
    "CKV_AWS_173": (
        "AWS::Serverless::Function",
        "no environment variable name suggests a secret",
        _no_secret_in_environment,
    ),
}


def checkov_skips(resource: dict) -> list:
    metadata = resource.get("Metadata")
    if not isinstance(metadata, dict):
        return []
    checkov = metadata.get("checkov")
    return as_list(checkov.get("skip")) if isinstance(checkov, dict) else []


def check_checkov_skips(template: dict) -> list[str]:
    problems = []
    for name, resource in template.get("Resources", {}).items():
        if not isinstance(resource, dict):
            continue
        metadata = resource.get("Metadata")
        if isinstance(metadata, dict) and "bridgecrew" in metadata:
            problems.append(f"{name}: skip checkov checks under Metadata.checkov, not Metadata.bridgecrew")
        seen: set[str] = set()
        for skip in checkov_skips(resource):
            if not isinstance(skip, dict) or not isinstance(skip.get("id"), str):
                problems.append(f"{name}: a checkov skip needs an id")
                continue
            check_id = skip["id"]
            comment = skip.get("comment")
            if not isinstance(comment, str) or not comment.strip():
                problems.append(f"{name}: checkov skip {check_id} needs a comment with its reason")
            if check_id in seen:
                problems.append(f"{name}: checkov skip {check_id} is listed twice")
            seen.add(check_id)
            if check_id not in CHECKOV_SKIPS:
                problems.append(
                    f"{name}: checkov skip {check_id} is not an accepted skip: fix the finding, or add it "
                    "with its reason to CHECKOV_SKIPS in tests/template/template_checks.py"
                )
                continue
            rtype, condition, holds = CHECKOV_SKIPS[check_id]
            if resource.get("Type") != rtype:
                problems.append(f"{name}: checkov skip {check_id} is accepted only on {rtype}, not {resource.get('Type')}")
            elif not holds(template, resource):
                problems.append(f"{name}: checkov skip {check_id} is accepted only when {condition}")
    return problems


ALL_CHECKS = (
    check_pairs_exist,
    check_redrive,
    check_visibility,
    check_event_settings,
    check_function_build,
    check_alarms,
    check_alarm_shapes,
    check_logging,
    check_deployment,
    check_data_safety,
    check_paging,
    check_parameters,
    check_name_lengths,
    check_encryption,
    check_fan_out,
    check_least_privilege,
    check_retry_control,
    check_outputs,
    check_checkov_skips,
)

