//! Reading a CloudFormation / SAM template (YAML with short-form tags such as `!Sub`, or JSON)
//! and resolving its intrinsic functions against what `local up` created.
//!
//! The YAML is turned into the JSON form of the template: `!Ref X` becomes `{"Ref": "X"}`,
//! `!GetAtt X.Arn` becomes `{"Fn::GetAtt": ["X", "Arn"]}`, `!Sub s` becomes `{"Fn::Sub": s}`, and
//! so on. [`Resolver::resolve`] then evaluates `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::FindInMap`,
//! `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::If`, the condition functions, and the pseudo
//! parameters `AWS::StackName`, `AWS::Region`, `AWS::AccountId`, `AWS::Partition`,
//! `AWS::URLSuffix` and `AWS::NoValue`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use sqs_kit::runner::BadInput;

/// Reads a template file into its JSON form. Errors name the file, and the line and column of a
/// syntax error.
pub(super) fn load(path: &Path) -> anyhow::Result<Value> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| BadInput(format!("cannot read {origin}: {e}")))?;
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| BadInput(format!("{origin} is not a valid YAML template: {e}")))?;
    let template = to_json(yaml).map_err(|e| BadInput(format!("{origin}: {e}")))?;
    if !template.get("Resources").is_some_and(Value::is_object) {
        return Err(BadInput(format!("{origin} is not a CloudFormation template: it has no \"Resources\" mapping")).into());
    }
    Ok(template)
}

/// YAML (with CloudFormation's short-form tags) to the template's JSON form.
fn to_json(value: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Yaml;
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{n} is not a number JSON can hold"))?
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => return Err(format!("a mapping key is not a scalar: {other:?}")),
                };
                object.insert(key, to_json(value)?);
            }
            Value::Object(object)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(tagged.value)?;
            let (key, inner) = match name {
                "Ref" => ("Ref".to_owned(), inner),
                "Condition" => ("Condition".to_owned(), inner),
                "GetAtt" => {
                    let inner = match inner {
                        Value::String(dotted) => match dotted.split_once('.') {
                            Some((resource, attribute)) => Value::Array(vec![resource.into(), attribute.into()]),
                            None => return Err(format!("!GetAtt {dotted} is not RESOURCE.ATTRIBUTE")),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), inner)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut object = Map::new();
            object.insert(key, inner);
            Value::Object(object)
        }
    })
}

/// Why a value cannot be resolved locally (e.g. it refers to a resource `local up` skips).
pub(super) type Unresolved = String;

/// Evaluates intrinsic functions with the stack's parameters and the resources created so far.
pub(super) struct Resolver<'t> {
    template: &'t Value,
    pub stack: String,
    pub region: String,
    pub partition: String,
    pub account: Option<String>,
    parameters: HashMap<String, Value>,
    /// `Ref` of each created resource (queue URL, topic ARN, table name, ...).
    refs: HashMap<String, Value>,
    /// `Fn::GetAtt` of each created resource.
    attributes: HashMap<String, HashMap<String, Value>>,
    /// Resources that are not created locally, with the reason.
    skipped: HashMap<String, String>,
}

impl<'t> Resolver<'t> {
    /// `overrides` replace parameter defaults; a parameter the template does not declare is an
    /// error.
    pub fn new(template: &'t Value, stack: String, region: String, overrides: &[(String, String)]) -> Result<Self, BadInput> {
        let declared = template.get("Parameters").and_then(Value::as_object);
        let mut parameters = HashMap::new();
        for (name, parameter) in declared.into_iter().flatten() {
            if let Some(default) = parameter.get("Default") {
                parameters.insert(name.clone(), default.clone());
            }
        }
        for (name, value) in overrides {
            let Some(declaration) = declared.and_then(|declared| declared.get(name)) else {
                return Err(BadInput(format!("--parameter {name}: the template declares no parameter {name}")));
            };
            check_parameter(declaration, value).map_err(|why| BadInput(format!("--parameter {name}={value}: {why}")))?;
            parameters.insert(name.clone(), Value::String(value.clone()));
        }
        Ok(Resolver {
            template,
            stack,
            region,
            partition: "aws".into(),
            account: None,
            parameters,
            refs: HashMap::new(),
            attributes: HashMap::new(),
            skipped: HashMap::new(),
        })
    }

    pub fn resources(&self) -> impl Iterator<Item = (&'t String, &'t Value)> {
        let template: &'t Value = self.template;
        template["Resources"].as_object().into_iter().flatten()
    }

    pub fn template(&self) -> &'t Value {
        self.template
    }

    /// Records a created resource's `Ref` value and attributes.
    pub fn created(&mut self, id: &str, reference: Value, attributes: HashMap<String, Value>) {
        self.refs.insert(id.to_owned(), reference);
        self.attributes.insert(id.to_owned(), attributes);
    }

    pub fn skip(&mut self, id: &str, reason: String) {
        self.skipped.insert(id.to_owned(), reason);
    }

    /// Learns the partition and account from the first ARN the API returned.
    pub fn learn_from_arn(&mut self, arn: &str) {
        if self.account.is_none() {
            if let Some(parts) = super::aws::parse_arn(arn) {
                self.partition = parts.partition.to_owned();
                self.account = Some(parts.account.to_owned());
            }
        }
    }

    /// The logical id of the created resource whose attribute `name` is `value` (e.g. the queue
    /// with this `Arn`).
    pub fn find_by_attribute(&self, name: &str, value: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(_, attributes)| attributes.get(name).and_then(Value::as_str) == Some(value))
            .map(|(id, _)| id.as_str())
    }

    /// Whether a resource's (or output's) `Condition` holds; `true` without one.
    pub fn applies(&self, item: &Value) -> Result<bool, Unresolved> {
        match item.get("Condition").and_then(Value::as_str) {
            Some(name) => self.condition(name, 0),
            None => Ok(true),
        }
    }

    fn condition(&self, name: &str, depth: usize) -> Result<bool, Unresolved> {
        if depth > 32 {
            return Err(format!("condition {name} refers to itself"));
        }
        let definition = self.template["Conditions"].get(name).ok_or_else(|| format!("the template declares no condition {name}"))?;
        self.truth(definition, depth + 1)
    }

    fn truth(&self, value: &Value, depth: usize) -> Result<bool, Unresolved> {
        match self.evaluate(value, depth)? {
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(format!("{} is not a condition", other.unwrap_or(Value::Null))),
        }
    }

    /// The value with every intrinsic function evaluated; `None` for `AWS::NoValue`.
    pub fn resolve(&self, value: &Value) -> Result<Option<Value>, Unresolved> {
        self.evaluate(value, 0)
    }

    /// A value that must resolve to a scalar, as text (numbers and booleans as CloudFormation
    /// passes them: `5`, `true`).
    pub fn resolve_text(&self, value: &Value) -> Result<String, Unresolved> {
        match self.resolve(value)? {
            Some(value) => scalar_text(&value),
            None => Err("it is AWS::NoValue".into()),
        }
    }

    fn evaluate(&self, value: &Value, depth: usize) -> Result<Option<Value>, Unresolved> {
        if depth > 64 {
            return Err("intrinsic functions nested too deeply".into());
        }
        let depth = depth + 1;
        match value {
            Value::Array(items) => {
                let mut resolved = Vec::with_capacity(items.len());
                for item in items {
                    resolved.extend(self.evaluate(item, depth)?);
                }
                Ok(Some(Value::Array(resolved)))
            }
            Value::Object(object) if object.len() == 1 => {
                let (key, argument) = object.iter().next().expect("one entry");
                if key == "Ref" || key == "Condition" || key.starts_with("Fn::") {
                    self.intrinsic(key, argument, depth)
                } else {
                    self.evaluate_object(object, depth)
                }
            }
            Value::Object(object) => self.evaluate_object(object, depth),
            scalar => Ok(Some(scalar.clone())),
        }
    }

    fn evaluate_object(&self, object: &Map<String, Value>, depth: usize) -> Result<Option<Value>, Unresolved> {
        let mut resolved = Map::new();
        for (key, value) in object {
            if let Some(value) = self.evaluate(value, depth).map_err(|e| format!("{key}: {e}"))? {
                resolved.insert(key.clone(), value);
            }
        }
        Ok(Some(Value::Object(resolved)))
    }

    fn intrinsic(&self, function: &str, argument: &Value, depth: usize) -> Result<Option<Value>, Unresolved> {
        let list = |count: usize| -> Result<Vec<Value>, Unresolved> {
            let resolved = self.evaluate(argument, depth)?.unwrap_or(Value::Null);
            match resolved {
                Value::Array(items) if items.len() == count => Ok(items),
                other => Err(format!("{function} expects a list of {count} values, not {other}")),
            }
        };
        match function {
            "Ref" => {
                let name = argument.as_str().ok_or_else(|| format!("Ref expects a name, not {argument}"))?;
                self.reference(name)
            }
            "Fn::GetAtt" => {
                let [resource, attribute] = <[Value; 2]>::try_from(list(2)?).expect("two values");
                let (Some(resource), Some(attribute)) = (resource.as_str(), attribute.as_str()) else {
                    return Err("Fn::GetAtt expects a resource and an attribute name".into());
                };
                self.attribute(resource, attribute).map(Some)
            }
            "Fn::Sub" => {
                let (text, variables) = match argument {
                    Value::String(text) => (text.as_str(), Map::new()),
                    Value::Array(items) if items.len() == 2 && items[0].is_string() => {
                        let variables = match self.evaluate(&items[1], depth)? {
                            Some(Value::Object(variables)) => variables,
                            _ => return Err("the variables of Fn::Sub are not a mapping".into()),
                        };
                        (items[0].as_str().expect("checked"), variables)
                    }
                    other => return Err(format!("Fn::Sub expects a string or [string, variables], not {other}")),
                };
                self.substitute(text, &variables).map(|text| Some(Value::String(text)))
            }
            "Fn::FindInMap" => {
                let items = self.evaluate(argument, depth)?.unwrap_or(Value::Null);
                let Some(items) = items.as_array().filter(|items| items.len() >= 3) else {
                    return Err(format!("Fn::FindInMap expects [map, key, key], not {items}"));
                };
                let keys: Vec<String> = items[..3].iter().map(scalar_text).collect::<Result<_, _>>()?;
                let found = self.template["Mappings"].get(&keys[0]).and_then(|map| map.get(&keys[1])).and_then(|map| map.get(&keys[2]));
                match (found, items.get(3)) {
                    (Some(found), _) => Ok(Some(found.clone())),
                    (None, Some(default)) => Ok(default.get("DefaultValue").cloned()),
                    (None, None) => Err(format!("the mapping {} has no {}.{}", keys[0], keys[1], keys[2])),
                }
            }
            "Fn::Join" => {
                let [delimiter, items] = <[Value; 2]>::try_from(list(2)?).expect("two values");
                let delimiter = scalar_text(&delimiter)?;
                let items = items.as_array().ok_or("Fn::Join expects a list to join")?;
                let parts: Vec<String> = items.iter().map(scalar_text).collect::<Result<_, _>>()?;
                Ok(Some(Value::String(parts.join(&delimiter))))
            }
            "Fn::Select" => {
                let [index, items] = <[Value; 2]>::try_from(list(2)?).expect("two values");
                let index: usize = scalar_text(&index)?.parse().map_err(|_| format!("Fn::Select index {index} is not a number"))?;
                let items = items.as_array().ok_or("Fn::Select expects a list")?;
                items.get(index).cloned().map(Some).ok_or_else(|| format!("Fn::Select index {index} is past the list's end"))
            }
            "Fn::Split" => {
                let [delimiter, text] = <[Value; 2]>::try_from(list(2)?).expect("two values");
                let (delimiter, text) = (scalar_text(&delimiter)?, scalar_text(&text)?);
                Ok(Some(Value::Array(text.split(delimiter.as_str()).map(|part| Value::String(part.to_owned())).collect())))
            }
            "Fn::If" => {
                let items = argument.as_array().filter(|items| items.len() == 3).ok_or("Fn::If expects [condition, then, else]")?;
                let name = items[0].as_str().ok_or("Fn::If expects a condition name")?;
                let branch = if self.condition(name, depth)? { &items[1] } else { &items[2] };
                self.evaluate(branch, depth)
            }
            "Fn::Equals" => {
                let [left, right] = <[Value; 2]>::try_from(list(2)?).expect("two values");
                let text = |v: &Value| scalar_text(v).unwrap_or_else(|_| v.to_string());
                Ok(Some(Value::Bool(text(&left) == text(&right))))
            }
            "Fn::Not" => {
                let items = argument.as_array().filter(|items| items.len() == 1).ok_or("Fn::Not expects [condition]")?;
                Ok(Some(Value::Bool(!self.truth(&items[0], depth)?)))
            }
            "Fn::And" | "Fn::Or" => {
                let items = argument.as_array().ok_or_else(|| format!("{function} expects a list of conditions"))?;
                let truths: Vec<bool> = items.iter().map(|item| self.truth(item, depth)).collect::<Result<_, _>>()?;
                let result = if function == "Fn::And" { truths.iter().all(|t| *t) } else { truths.iter().any(|t| *t) };
                Ok(Some(Value::Bool(result)))
            }
            "Condition" => {
                let name = argument.as_str().ok_or("Condition expects a condition name")?;
                Ok(Some(Value::Bool(self.condition(name, depth)?)))
            }
            other => Err(format!("{other} is not supported locally")),
        }
    }

    /// `Ref`: a pseudo parameter, a parameter, or a created resource.
    fn reference(&self, name: &str) -> Result<Option<Value>, Unresolved> {
        let text = |s: &str| Ok(Some(Value::String(s.to_owned())));
        match name {
            "AWS::StackName" => return text(&self.stack),
            "AWS::Region" => return text(&self.region),
            "AWS::Partition" => return text(&self.partition),
            "AWS::URLSuffix" => return text("amazonaws.com"),
            "AWS::NoValue" => return Ok(None),
            "AWS::NotificationARNs" => return Ok(Some(Value::Array(Vec::new()))),
            "AWS::AccountId" => {
                return match &self.account {
                    Some(account) => text(account),
                    None => Err("the account id is not known before the first resource exists".into()),
                }
            }
            "AWS::StackId" => {
                let account = self.account.as_deref().unwrap_or("000000000000");
                return text(&format!("arn:{}:cloudformation:{}:{account}:stack/{}/local", self.partition, self.region, self.stack));
            }
            _ => {}
        }
        if self.template["Parameters"].get(name).is_some() {
            return match self.parameters.get(name) {
                Some(value) => Ok(Some(value.clone())),
                None => Err(format!("parameter {name} has no default value (pass --parameter {name}=VALUE)")),
            };
        }
        if let Some(value) = self.refs.get(name) {
            return Ok(Some(value.clone()));
        }
        Err(self.missing(name))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<Value, Unresolved> {
        match self.attributes.get(resource) {
            Some(attributes) => {
                attributes.get(attribute).cloned().ok_or_else(|| format!("{resource} has no attribute {attribute} locally"))
            }
            None => Err(self.missing(resource)),
        }
    }

    fn missing(&self, name: &str) -> Unresolved {
        match (self.skipped.get(name), self.template["Resources"].get(name)) {
            (Some(reason), Some(resource)) => {
                let kind = resource["Type"].as_str().unwrap_or("a resource");
                format!("refers to {name} ({kind}), which is not created locally ({reason})")
            }
            (None, Some(_)) => format!("refers to {name}, which is not created yet"),
            (_, None) => format!("refers to {name}, which the template does not declare"),
        }
    }

    /// `Fn::Sub`: `${Name}`, `${Resource.Attribute}`, `${!Literal}`.
    fn substitute(&self, text: &str, variables: &Map<String, Value>) -> Result<String, Unresolved> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| format!("an unclosed ${{ in {text:?}"))?;
            let name = after[..end].trim();
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&scalar_text(value)?);
            } else if let Some((resource, attribute)) = name.split_once('.').filter(|_| !name.starts_with("AWS::")) {
                out.push_str(&scalar_text(&self.attribute(resource, attribute)?)?);
            } else {
                match self.reference(name)? {
                    Some(value) => out.push_str(&scalar_text(&value)?),
                    None => return Err(format!("${{{name}}} is AWS::NoValue")),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A scalar as CloudFormation passes it to an API: strings as they are, numbers and booleans
/// as their text.
pub(super) fn scalar_text(value: &Value) -> Result<String, Unresolved> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{other} is not a scalar")),
    }
}

/// Refuses a parameter value that CloudFormation would refuse on deploy: a `Number` that is not
/// a number or lies outside `MinValue`..`MaxValue`, a value not in `AllowedValues`, a string
/// outside `MinLength`..`MaxLength`. (`AllowedPattern` is left to CloudFormation: it needs a
/// regular expression engine this crate does not carry.)
fn check_parameter(declaration: &Value, value: &str) -> Result<(), String> {
    let bound = |name: &str| declaration.get(name).and_then(|b| scalar_text(b).ok()).and_then(|b| b.parse::<f64>().ok());
    let number = if declaration["Type"] == "Number" {
        match value.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => Some(number),
            _ => return Err("the template declares it a Number".into()),
        }
    } else {
        None
    };
    if let Some(number) = number {
        if let Some(min) = bound("MinValue").filter(|min| number < *min) {
            return Err(format!("below the template's MinValue {min}"));
        }
        if let Some(max) = bound("MaxValue").filter(|max| number > *max) {
            return Err(format!("above the template's MaxValue {max}"));
        }
    }
    let length = value.chars().count() as f64;
    if let Some(min) = bound("MinLength").filter(|min| length < *min) {
        return Err(format!("shorter than the template's MinLength {min}"));
    }
    if let Some(max) = bound("MaxLength").filter(|max| length > *max) {
        return Err(format!("longer than the template's MaxLength {max}"));
    }
    if let Some(allowed) = declaration.get("AllowedValues").and_then(Value::as_array) {
        let texts: Vec<String> = allowed.iter().filter_map(|a| scalar_text(a).ok()).collect();
        let matches = |text: &String| *text == value || number.is_some_and(|n| text.parse::<f64>() == Ok(n));
        if !texts.iter().any(matches) {
            return Err(format!("not one of the template's AllowedValues ({})", texts.join(", ")));
        }
    }
    Ok(())
}

/// `true` or `"true"`.
pub(super) fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  MaxReceiveCount: {Type: Number, Default: 5}
  AlarmEmail: {Type: String, Default: ""}
  Sender: {Type: String}
Conditions:
  HasAlarmEmail: !Not [!Equals [!Ref AlarmEmail, ""]]
Mappings:
  Settings:
    email: {VisibilityTimeout: 200}
Resources:
  Dlq:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-dlq"
      RedriveAllowPolicy:
        sourceQueueArns:
          - !Sub "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-q"
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !FindInMap [Settings, email, VisibilityTimeout]
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: !Ref MaxReceiveCount
  Key:
    Type: AWS::KMS::Key
  Alarm:
    Type: AWS::SNS::Subscription
    Condition: HasAlarmEmail
    Properties:
      Endpoint: !Ref AlarmEmail
      Name: !Join ["-", [!Ref "AWS::StackName", !Select [1, !Split [",", "a,b"]], !If [HasAlarmEmail, x, y]]]
      Literal: !Sub "${!NotMe}-${Dlq.QueueName}"
"#;

    fn template() -> Value {
        to_json(serde_yaml::from_str(TEMPLATE).unwrap()).unwrap()
    }

    #[test]
    fn short_form_tags_become_the_json_form() {
        let template = template();
        assert_eq!(
            template["Resources"]["Queue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
            serde_json::json!({"Fn::GetAtt": ["Dlq", "Arn"]})
        );
        assert_eq!(template["Resources"]["Dlq"]["Properties"]["QueueName"], serde_json::json!({"Fn::Sub": "${AWS::StackName}-dlq"}));
    }

    #[test]
    fn intrinsics_resolve_against_created_resources() {
        let template = template();
        let mut resolver = Resolver::new(&template, "orders".into(), "us-east-1".into(), &[]).unwrap();
        let properties = |id: &str| &template["Resources"][id]["Properties"];
        assert_eq!(resolver.resolve_text(&properties("Dlq")["QueueName"]).unwrap(), "orders-dlq");
        let before = resolver.resolve(&properties("Dlq")["RedriveAllowPolicy"]).unwrap_err();
        assert!(before.contains("account id"), "{before}");

        resolver.learn_from_arn("arn:aws:sqs:us-east-1:123456789012:orders-dlq");
        let attributes = HashMap::from([
            ("Arn".to_owned(), Value::from("arn:aws:sqs:us-east-1:123456789012:orders-dlq")),
            ("QueueName".to_owned(), Value::from("orders-dlq")),
        ]);
        resolver.created("Dlq", "http://local/orders-dlq".into(), attributes);
        assert_eq!(
            resolver.resolve(&properties("Dlq")["RedriveAllowPolicy"]).unwrap().unwrap(),
            serde_json::json!({"sourceQueueArns": ["arn:aws:sqs:us-east-1:123456789012:orders-q"]})
        );
        assert_eq!(
            resolver.resolve(properties("Queue")).unwrap().unwrap(),
            serde_json::json!({"VisibilityTimeout": 200, "RedrivePolicy": {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:orders-dlq", "maxReceiveCount": 5}})
        );
        let alarm = &template["Resources"]["Alarm"];
        assert!(!resolver.applies(alarm).unwrap());
        assert_eq!(resolver.resolve_text(&alarm["Properties"]["Name"]).unwrap(), "orders-b-y");
        assert_eq!(resolver.resolve_text(&alarm["Properties"]["Literal"]).unwrap(), "${NotMe}-orders-dlq");
        assert_eq!(resolver.find_by_attribute("QueueName", "orders-dlq"), Some("Dlq"));

        resolver.skip("Key", "encryption".into());
        let skipped = resolver.resolve(&serde_json::json!({"Ref": "Key"})).unwrap_err();
        assert!(skipped.contains("Key (AWS::KMS::Key), which is not created locally"), "{skipped}");
        let no_default = resolver.resolve(&serde_json::json!({"Ref": "Sender"})).unwrap_err();
        assert!(no_default.contains("--parameter Sender=VALUE"), "{no_default}");
    }

    #[test]
    fn overrides_replace_defaults_and_must_be_declared() {
        let template = template();
        let resolver = Resolver::new(&template, "s".into(), "r".into(), &[("AlarmEmail".into(), "a@b.c".into())]).unwrap();
        assert!(resolver.applies(&template["Resources"]["Alarm"]).unwrap());
        assert!(Resolver::new(&template, "s".into(), "r".into(), &[("Nope".into(), "1".into())]).is_err());
    }

    /// template.yaml's retry control: a switch parameter, a condition on it, and an environment
    /// value that is the DLQ's URL when the condition holds.
    #[test]
    fn a_switch_parameter_picks_the_branch_of_its_condition() {
        let template = to_json(
            serde_yaml::from_str(
                r#"
Parameters:
  Backoff: {Type: String, Default: "off"}
  DeadLetter: {Type: String, Default: "off", AllowedValues: ["off", "on"]}
Conditions:
  BackoffOn: !Not [!Equals [!Ref Backoff, "off"]]
  DeadLetterOn: !Equals [!Ref DeadLetter, "on"]
Resources:
  Dlq: {Type: AWS::SQS::Queue}
  Function:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          SQS_KIT_BACKOFF: !Ref Backoff
          SQS_KIT_DEAD_LETTER: !If [DeadLetterOn, !Ref Dlq, "off"]
          BACKOFF_ON: !If [BackoffOn, "yes", "no"]
"#,
            )
            .unwrap(),
        )
        .unwrap();
        let variables = &template["Resources"]["Function"]["Properties"]["Environment"]["Variables"];
        let environment = |overrides: &[(&str, &str)]| {
            let overrides: Vec<(String, String)> = overrides.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            let mut resolver = Resolver::new(&template, "s".into(), "r".into(), &overrides).unwrap();
            resolver.created("Dlq", "http://local/s-dlq".into(), HashMap::new());
            resolver.resolve(variables).unwrap().unwrap()
        };
        assert_eq!(environment(&[]), serde_json::json!({"SQS_KIT_BACKOFF": "off", "SQS_KIT_DEAD_LETTER": "off", "BACKOFF_ON": "no"}));
        assert_eq!(
            environment(&[("DeadLetter", "on"), ("Backoff", "base=1,cap=60")]),
            serde_json::json!({"SQS_KIT_BACKOFF": "base=1,cap=60", "SQS_KIT_DEAD_LETTER": "http://local/s-dlq", "BACKOFF_ON": "yes"})
        );
        let refused = Resolver::new(&template, "s".into(), "r".into(), &[("DeadLetter".into(), "yes".into())]).err().unwrap();
        assert_eq!(refused.0, "--parameter DeadLetter=yes: not one of the template's AllowedValues (off, on)");
    }

    #[test]
    fn overrides_meet_the_parameter_constraints() {
        let count = serde_json::json!({"Type": "Number", "MinValue": 1, "MaxValue": 1000});
        assert_eq!(check_parameter(&count, "1"), Ok(()));
        assert_eq!(check_parameter(&count, "1000"), Ok(()));
        assert_eq!(check_parameter(&count, "0").unwrap_err(), "below the template's MinValue 1");
        assert_eq!(check_parameter(&count, "1000.5").unwrap_err(), "above the template's MaxValue 1000");
        assert_eq!(check_parameter(&count, "inf").unwrap_err(), "the template declares it a Number");
        let days = serde_json::json!({"Type": "Number", "AllowedValues": [1, 3, "5"]});
        assert_eq!(check_parameter(&days, "3"), Ok(()));
        assert_eq!(check_parameter(&days, "5.0"), Ok(()));
        assert_eq!(check_parameter(&days, "4").unwrap_err(), "not one of the template's AllowedValues (1, 3, 5)");
        let name = serde_json::json!({"Type": "String", "MinLength": 1, "MaxLength": 3, "AllowedValues": ["ab", "abc"]});
        assert_eq!(check_parameter(&name, "abc"), Ok(()));
        assert_eq!(check_parameter(&name, "").unwrap_err(), "shorter than the template's MinLength 1");
        assert_eq!(check_parameter(&name, "abcd").unwrap_err(), "longer than the template's MaxLength 3");
        assert_eq!(check_parameter(&name, "a").unwrap_err(), "not one of the template's AllowedValues (ab, abc)");
    }
}
