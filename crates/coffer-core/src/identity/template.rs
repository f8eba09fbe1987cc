//! Identity templates in policy paths (`{{identity.entity.name}}`, ...), as
//! Vault's ACL templating resolves them.
//!
//! * A template that cannot be resolved (no entity, a missing metadata key,
//!   no alias on that mount, not in that group, an unknown template) makes
//!   its path rule not apply.
//! * A value that would widen the path is refused, as OpenBao does: one
//!   holding `*` or `+` (unless the policy sets
//!   `allow_wildcards_in_identity_templates`) or `/` (unless it sets
//!   `allow_slashes_in_identity_templates`) fails the whole ACL, so the
//!   token is refused everywhere (OpenBao's 400 `Forbidden`) instead of
//!   reaching more than intended.
//! * Substituted text is never scanned again for templates.

use std::collections::BTreeMap;

use super::model::Alias;

/// A group the entity is in, as templates see it.
#[derive(Debug, Clone, Default)]
pub struct GroupData {
    /// The group id.
    pub id: String,
    /// The group name.
    pub name: String,
    /// The group's metadata.
    pub metadata: BTreeMap<String, String>,
}

/// What templates may refer to, read from the identity store at one moment.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// `identity.entity.id`.
    pub entity_id: String,
    /// `identity.entity.name`.
    pub entity_name: String,
    /// `identity.entity.metadata.<key>`.
    pub metadata: BTreeMap<String, String>,
    /// The entity's aliases by mount accessor.
    pub aliases: BTreeMap<String, Alias>,
    /// Every group the entity is in (direct and inherited).
    pub groups: Vec<GroupData>,
}

/// What a policy allows substitutions to contain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allow {
    /// `allow_slashes_in_identity_templates`.
    pub slashes: bool,
    /// `allow_wildcards_in_identity_templates`.
    pub wildcards: bool,
}

/// A substitution held a character the policy does not allow; the message
/// names the character, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden(pub char);

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "template substitution contains forbidden value: {:?}",
            self.0
        )
    }
}

/// Whether `text` holds a template at all.
pub fn is_templated(text: &str) -> bool {
    text.contains("{{")
}

/// Resolves one template expression (the text between `{{` and `}}`).
fn lookup<'a>(expr: &str, data: &'a TemplateData) -> Option<&'a str> {
    let expr = expr.trim();
    if data.entity_id.is_empty() {
        return None;
    }
    let rest = expr.strip_prefix("identity.")?;
    if let Some(rest) = rest.strip_prefix("entity.") {
        return match rest {
            "id" => Some(&data.entity_id),
            "name" => Some(&data.entity_name),
            _ => {
                if let Some(key) = rest.strip_prefix("metadata.") {
                    return data.metadata.get(key).map(String::as_str);
                }
                let rest = rest.strip_prefix("aliases.")?;
                // <accessor>.<field>; accessors hold no dot.
                let (accessor, field) = rest.split_once('.')?;
                let alias = data.aliases.get(accessor)?;
                match field {
                    "id" => Some(&alias.id),
                    "name" => Some(&alias.name),
                    f => {
                        if let Some(key) = f.strip_prefix("metadata.") {
                            alias.metadata.get(key).map(String::as_str)
                        } else if let Some(key) = f.strip_prefix("custom_metadata.") {
                            alias.custom_metadata.as_ref()?.get(key).map(String::as_str)
                        } else {
                            None
                        }
                    }
                }
            }
        };
    }
    let rest = rest.strip_prefix("groups.")?;
    if let Some(rest) = rest.strip_prefix("ids.") {
        let (id, field) = rest.split_once('.')?;
        let g = data.groups.iter().find(|g| g.id == id)?;
        return group_field(g, field);
    }
    let rest = rest.strip_prefix("names.")?;
    // Group names may hold dots: the field is what follows the last known
    // field marker.
    for (marker, is_meta) in [(".metadata.", true), (".id", false), (".name", false)] {
        let found = if is_meta {
            rest.find(marker)
        } else {
            rest.strip_suffix(marker).map(str::len)
        };
        if let Some(pos) = found {
            let (name, field) = (&rest[..pos], &rest[pos + 1..]);
            let g = data
                .groups
                .iter()
                .find(|g| g.name.eq_ignore_ascii_case(name))?;
            return group_field(g, field);
        }
    }
    None
}

fn group_field<'a>(g: &'a GroupData, field: &str) -> Option<&'a str> {
    match field {
        "id" => Some(&g.id),
        "name" => Some(&g.name),
        f => g
            .metadata
            .get(f.strip_prefix("metadata.")?)
            .map(String::as_str),
    }
}

/// Renders the templates of one path pattern: `Ok(None)` when one cannot
/// be resolved (the rule does not apply), an error when a value holds
/// what `allow` forbids.
pub fn render(
    pattern: &str,
    data: &TemplateData,
    allow: Allow,
) -> Result<Option<String>, Forbidden> {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Ok(None);
        };
        let Some(value) = lookup(&after[..end], data) else {
            return Ok(None);
        };
        for c in value.chars() {
            let bad = match c {
                '*' | '+' => !allow.wildcards,
                '/' => !allow.slashes,
                _ => false,
            };
            if bad {
                return Err(Forbidden(c));
            }
        }
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// Why a JSON template (an identity token role's) could not be rendered;
/// the messages are OpenBao's and name no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonTemplateError {
    /// A `{{` without its `}}`, or the reverse.
    Unbalanced,
    /// An `identity.groups.*` template for an entity in no group.
    NoGroups,
    /// A template that names nothing known.
    NotFound,
    /// A malformed selector (the message says which).
    Invalid(String),
}

impl std::fmt::Display for JsonTemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonTemplateError::Unbalanced => f.write_str("unbalanced templating characters"),
            JsonTemplateError::NoGroups => f.write_str(
                "string contains groups template directives but no groups were provided",
            ),
            JsonTemplateError::NotFound => {
                f.write_str("no value could be found for one of the template directives")
            }
            JsonTemplateError::Invalid(m) => f.write_str(m),
        }
    }
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A map as a JSON object (`{}` when empty).
fn object(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

/// A list as a JSON array, `null` when empty (as OpenBao renders an
/// entity in no group).
fn array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        return "null".into();
    }
    serde_json::to_string(&items).unwrap_or_else(|_| "null".into())
}

/// One expression of a JSON template, rendered as JSON text.
fn json_value(expr: &str, data: &TemplateData, now: i64) -> Result<String, JsonTemplateError> {
    use JsonTemplateError::*;
    if let Some(rest) = expr.strip_prefix("identity.entity.") {
        return Ok(match rest {
            "id" => quote(&data.entity_id),
            "name" => quote(&data.entity_name),
            "metadata" => object(&data.metadata),
            "groups.names" => array(data.groups.iter().map(|g| g.name.as_str())),
            "groups.ids" => array(data.groups.iter().map(|g| g.id.as_str())),
            _ => {
                if let Some(key) = rest.strip_prefix("metadata.") {
                    return Ok(quote(data.metadata.get(key).map_or("", String::as_str)));
                }
                let Some(sel) = rest.strip_prefix("aliases.") else {
                    return Err(NotFound);
                };
                let (accessor, field) = sel
                    .split_once('.')
                    .ok_or_else(|| Invalid("invalid alias selector".into()))?;
                // No alias on that mount: empty values, as OpenBao renders.
                let alias = data.aliases.get(accessor);
                let empty = BTreeMap::new();
                let metadata = alias.map_or(&empty, |a| &a.metadata);
                let custom = alias
                    .and_then(|a| a.custom_metadata.as_ref())
                    .unwrap_or(&empty);
                match field {
                    "id" => quote(alias.map_or("", |a| a.id.as_str())),
                    "name" => quote(alias.map_or("", |a| a.name.as_str())),
                    "metadata" => object(metadata),
                    "custom_metadata" => object(custom),
                    f => {
                        if let Some(key) = f.strip_prefix("metadata.") {
                            quote(metadata.get(key).map_or("", String::as_str))
                        } else if let Some(key) = f.strip_prefix("custom_metadata.") {
                            quote(custom.get(key).map_or("", String::as_str))
                        } else {
                            return Err(NotFound);
                        }
                    }
                }
            }
        });
    }
    if let Some(rest) = expr.strip_prefix("identity.groups.") {
        if data.groups.is_empty() {
            return Err(NoGroups);
        }
        let (by, rest) = rest
            .split_once('.')
            .filter(|(by, _)| matches!(*by, "ids" | "names"))
            .ok_or_else(|| Invalid("invalid groups selector".into()))?;
        let (key, field) = rest
            .split_once('.')
            .ok_or_else(|| Invalid("invalid groups accessor".into()))?;
        let g = data
            .groups
            .iter()
            .find(|g| {
                if by == "ids" {
                    g.id == key
                } else {
                    g.name == key
                }
            })
            .ok_or_else(|| Invalid(format!("entity is not a member of group {key:?}")))?;
        return match field {
            "id" => Ok(quote(&g.id)),
            "name" if !g.name.is_empty() => Ok(quote(&g.name)),
            f => f
                .strip_prefix("metadata.")
                .and_then(|k| g.metadata.get(k))
                .map(|v| quote(v))
                .ok_or(NotFound),
        };
    }
    if let Some(rest) = expr.strip_prefix("time.") {
        let mut parts = rest.splitn(3, '.');
        let head = parts.next().unwrap_or_default();
        if head != "now" {
            return Err(Invalid(format!("invalid time selector {head:?}")));
        }
        return match (parts.next(), parts.next()) {
            (None, _) => Ok(now.to_string()),
            (Some(_), None) => Err(Invalid("missing time operand".into())),
            (Some(op), Some(d)) => {
                let secs = crate::util::parse_duration(d)
                    .and_then(|s| i64::try_from(s).ok())
                    .ok_or_else(|| Invalid("invalid duration".into()))?;
                match op {
                    "plus" => Ok(now.saturating_add(secs).to_string()),
                    "minus" => Ok(now.saturating_sub(secs).to_string()),
                    _ => Err(Invalid(format!("invalid time operator {op:?}"))),
                }
            }
        };
    }
    Err(NotFound)
}

/// Renders a JSON template (an identity token role's `template`) for
/// `data` at `now` (Unix seconds), as OpenBao's JSON templating does:
/// strings become JSON string literals (so an entity's metadata can never
/// break out of its value), metadata maps objects, group lists arrays,
/// `time.now[.plus|.minus.<duration>]` integers. Substituted text is never
/// scanned again for templates. The result is text; the caller parses it.
pub fn render_json(
    template: &str,
    data: &TemplateData,
    now: i64,
) -> Result<String, JsonTemplateError> {
    let mut pieces = template.split("{{");
    let first = pieces.next().unwrap_or_default();
    if first.contains("}}") {
        return Err(JsonTemplateError::Unbalanced);
    }
    let mut out = String::with_capacity(template.len() * 2);
    out.push_str(first);
    for piece in pieces {
        let mut halves = piece.split("}}");
        let (Some(expr), Some(after), None) = (halves.next(), halves.next(), halves.next()) else {
            return Err(JsonTemplateError::Unbalanced);
        };
        out.push_str(&json_value(expr.trim(), data, now)?);
        out.push_str(after);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TemplateData {
        let alias = Alias {
            id: "al-1".into(),
            canonical_id: "e-1".into(),
            mount_accessor: "auth_userpass_1".into(),
            name: "alice".into(),
            metadata: BTreeMap::new(),
            custom_metadata: None,
            creation_time: String::new(),
            last_update_time: String::new(),
        };
        TemplateData {
            entity_id: "e-1".into(),
            entity_name: "alice".into(),
            metadata: [("team".to_string(), "billing".to_string())].into(),
            aliases: [("auth_userpass_1".to_string(), alias)].into(),
            groups: vec![GroupData {
                id: "g-1".into(),
                name: "billing.eu".into(),
                metadata: BTreeMap::new(),
            }],
        }
    }

    fn r(p: &str) -> Result<Option<String>, Forbidden> {
        render(p, &data(), Allow::default())
    }

    #[test]
    fn resolves_each_kind_of_template() {
        assert_eq!(r("a/{{identity.entity.id}}/b").unwrap().unwrap(), "a/e-1/b");
        assert_eq!(
            r("a/{{ identity.entity.name }}/*").unwrap().unwrap(),
            "a/alice/*"
        );
        assert_eq!(
            r("{{identity.entity.metadata.team}}").unwrap().unwrap(),
            "billing"
        );
        assert_eq!(
            r("x/{{identity.entity.aliases.auth_userpass_1.name}}")
                .unwrap()
                .unwrap(),
            "x/alice"
        );
        assert_eq!(
            r("{{identity.groups.names.billing.eu.id}}")
                .unwrap()
                .unwrap(),
            "g-1"
        );
        assert_eq!(
            r("{{identity.groups.ids.g-1.name}}").unwrap().unwrap(),
            "billing.eu"
        );
    }

    #[test]
    fn unresolvable_templates_drop_the_rule() {
        for p in [
            "{{identity.entity.metadata.nokey}}",
            "{{identity.entity.aliases.other.name}}",
            "{{identity.groups.names.nope.id}}",
            "{{identity.entity.unknown}}",
            "{{identity.entity.name",
            "{{something.else}}",
        ] {
            assert_eq!(r(p), Ok(None), "{p}");
        }
        let none = TemplateData::default();
        assert_eq!(
            render("{{identity.entity.id}}", &none, Allow::default()),
            Ok(None)
        );
    }

    #[test]
    fn values_that_would_widen_the_path_are_refused() {
        let mut d = data();
        for (name, c) in [("a*", '*'), ("a+", '+'), ("a/b", '/'), ("../*", '/')] {
            d.entity_name = name.into();
            let got = render("u/{{identity.entity.name}}/*", &d, Allow::default());
            assert_eq!(got, Err(Forbidden(c)), "{name}");
        }
        d.entity_name = "a/b".into();
        let allow = Allow {
            slashes: true,
            wildcards: false,
        };
        assert_eq!(
            render("u/{{identity.entity.name}}", &d, allow)
                .unwrap()
                .unwrap(),
            "u/a/b"
        );
        // A value spelling a template is not expanded again.
        d.entity_name = "{{identity.entity.id}}".into();
        assert_eq!(
            render("u/{{identity.entity.name}}", &d, Allow::default())
                .unwrap()
                .unwrap(),
            "u/{{identity.entity.id}}"
        );
    }

    /// JSON templates: strings quoted (a value cannot break out), maps as
    /// objects, groups as arrays (null without groups), a missing alias as
    /// empty values, time as integers; what names nothing is refused.
    #[test]
    fn json_templates_render_as_openbao_renders_them() {
        let mut d = data();
        d.entity_name = "al\"ice".into();
        let out = render_json(
            r#"{"n": {{identity.entity.name}}, "m": {{identity.entity.metadata}}, "t": {{ identity.entity.metadata.team }}, "x": {{identity.entity.metadata.none}}, "g": {{identity.entity.groups.names}}, "gi": {{identity.entity.groups.ids}}, "a": {{identity.entity.aliases.auth_userpass_1.name}}, "am": {{identity.entity.aliases.nope.metadata}}, "an": {{identity.entity.aliases.nope.name}}, "now": {{time.now}}, "later": {{time.now.plus.1h}}, "before": {{time.now.minus.60}}, "gn": {{identity.groups.names.billing.eu.id}} }"#,
            &d,
            1000,
        );
        // A group name with a dot cannot be selected by name (as in OpenBao).
        assert_eq!(
            out,
            Err(JsonTemplateError::Invalid(
                "entity is not a member of group \"billing\"".into()
            ))
        );
        let out = render_json(
            r#"{"n": {{identity.entity.name}}, "m": {{identity.entity.metadata}}, "t": {{ identity.entity.metadata.team }}, "x": {{identity.entity.metadata.none}}, "g": {{identity.entity.groups.names}}, "gi": {{identity.entity.groups.ids}}, "a": {{identity.entity.aliases.auth_userpass_1.name}}, "am": {{identity.entity.aliases.nope.metadata}}, "an": {{identity.entity.aliases.nope.name}}, "now": {{time.now}}, "later": {{time.now.plus.1h}}, "before": {{time.now.minus.60}}, "gn": {{identity.groups.ids.g-1.name}} }"#,
            &d,
            1000,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"n": "al\"ice", "m": {"team": "billing"}, "t": "billing", "x": "",
                "g": ["billing.eu"], "gi": ["g-1"], "a": "alice", "am": {}, "an": "",
                "now": 1000, "later": 4600, "before": 940, "gn": "billing.eu"})
        );
        let none = TemplateData::default();
        assert_eq!(
            render_json("{\"g\": {{identity.entity.groups.names}}}", &none, 0).unwrap(),
            "{\"g\": null}"
        );
        for (t, e) in [
            (
                "{{identity.groups.names.x.id}}",
                JsonTemplateError::NoGroups,
            ),
            ("{{identity.entity.bogus}}", JsonTemplateError::NotFound),
            ("{{nothing}}", JsonTemplateError::NotFound),
            ("{{identity.entity.name", JsonTemplateError::Unbalanced),
            ("}}{{identity.entity.name}}", JsonTemplateError::Unbalanced),
            (
                "{{time.now.plus}}",
                JsonTemplateError::Invalid("missing time operand".into()),
            ),
            (
                "{{time.later}}",
                JsonTemplateError::Invalid("invalid time selector \"later\"".into()),
            ),
        ] {
            assert_eq!(render_json(t, &none, 0), Err(e), "{t}");
        }
        // Substituted text is not expanded again.
        d.entity_name = "{{identity.entity.id}}".into();
        assert_eq!(
            render_json("{{identity.entity.name}}", &d, 0).unwrap(),
            "\"{{identity.entity.id}}\""
        );
    }
}
