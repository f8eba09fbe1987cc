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
}
