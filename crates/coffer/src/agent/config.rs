//! The agent's configuration file, in Vault Agent's field names.
//!
//! Three spellings are accepted, chosen by the file's extension: `.toml`
//! (Coffer's), `.json`, and anything else as HCL (Vault Agent's own format,
//! `agent.hcl`). HCL blocks become tables: `method "approle" { ... }` is
//! `[auto_auth.method] type = "approle"`, `env_template "NAME" { ... }` is
//! `[[env_template]] name = "NAME"`, and repeated blocks (`sink`,
//! `template`, `env_template`, `listener`) are lists. Every field is checked:
//! an unknown field, a wrong type or a missing required field refuses the
//! whole file with the field's dotted name.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// Vault Agent's default `static_secret_render_interval`.
const DEFAULT_STATIC_INTERVAL: Duration = Duration::from_secs(300);

/// The whole agent configuration, checked.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server to talk to.
    pub vault: VaultConfig,
    /// How the agent obtains its token.
    pub auto_auth: AutoAuth,
    /// Settings shared by every template.
    pub template_config: TemplateConfig,
    /// Files rendered from templates.
    pub templates: Vec<TemplateSpec>,
    /// Environment variables rendered for the `exec` child.
    pub env_templates: Vec<EnvTemplate>,
    /// The supervised child process, if any.
    pub exec: Option<ExecConfig>,
    /// The local API proxy, if any.
    pub api_proxy: Option<ApiProxy>,
    /// Exit once a token was obtained and written to the sinks.
    pub exit_after_auth: bool,
}

/// `vault { ... }`.
#[derive(Debug, Clone, Default)]
pub struct VaultConfig {
    /// The server address (default: `$COFFER_ADDR`/`$VAULT_ADDR`).
    pub address: Option<String>,
    /// PEM file of the CA (or the server's certificate) to trust.
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    pub tls_skip_verify: bool,
}

/// `auto_auth { method ... sink ... }`.
#[derive(Debug, Clone)]
pub struct AutoAuth {
    /// The login method.
    pub method: Method,
    /// Where the token is written.
    pub sinks: Vec<FileSink>,
    /// First retry delay after a failed login or renewal.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

/// `auto_auth.method`.
#[derive(Debug, Clone)]
pub enum Method {
    /// AppRole: role_id and secret_id read from files.
    AppRole {
        /// Mount path, `auth/approle` by default.
        mount_path: String,
        /// File holding the role_id.
        role_id_file_path: PathBuf,
        /// File holding the secret_id.
        secret_id_file_path: PathBuf,
        /// Delete the secret_id file once read (Vault Agent's default: false).
        remove_secret_id_file_after_reading: bool,
    },
    /// JWT: a token file (such as a Kubernetes service-account token),
    /// read again at every login.
    Jwt {
        /// Mount path, `auth/jwt` by default.
        mount_path: String,
        /// The JWT file.
        path: PathBuf,
        /// The role to log in with.
        role: String,
        /// Delete the file once read (Vault Agent's default: true).
        remove_jwt_after_reading: bool,
    },
    /// A token read from a file, renewed but never replaced by a login.
    TokenFile {
        /// The token file.
        token_file_path: PathBuf,
    },
}

/// `sink "file" { config = { path, mode } }`.
#[derive(Debug, Clone)]
pub struct FileSink {
    /// Where the token is written.
    pub path: PathBuf,
    /// File mode (default 0600).
    pub mode: u32,
}

/// `template_config { ... }`.
#[derive(Debug, Clone)]
pub struct TemplateConfig {
    /// How often static secrets are read again while no change events arrive.
    pub static_secret_render_interval: Duration,
    /// Exit when a template cannot be rendered after its retries.
    pub exit_on_retry_failure: bool,
}

/// One `template { ... }` block.
#[derive(Debug, Clone)]
pub struct TemplateSpec {
    /// The template text (from `contents`, or read from `source`).
    pub contents: String,
    /// A name for log lines (the source file or the destination).
    pub name: String,
    /// The file written.
    pub destination: PathBuf,
    /// Its mode (default 0600).
    pub perms: u32,
    /// Run after each render that changed the file.
    pub command: Option<Command>,
    /// How long the command may run.
    pub command_timeout: Duration,
}

/// A command from the operator's configuration.
#[derive(Debug, Clone)]
pub enum Command {
    /// A string, run by `/bin/sh -c` as Vault Agent runs it.
    Shell(String),
    /// A program and its arguments, run without a shell.
    Argv(Vec<String>),
}

/// One `env_template "NAME" { contents = ... }` block.
#[derive(Debug, Clone)]
pub struct EnvTemplate {
    /// The environment variable.
    pub name: String,
    /// The template text.
    pub contents: String,
}

/// `exec { ... }`.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Whether a changed secret restarts the child.
    pub restart_on_secret_changes: Restart,
    /// Signal sent to stop the child (default SIGTERM).
    pub restart_stop_signal: i32,
    /// Time the child gets to stop before SIGKILL.
    pub restart_kill_timeout: Duration,
}

/// `restart_on_secret_changes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Restart the child whenever an env template renders differently.
    Always,
    /// Keep the child running with the environment it started with.
    Never,
}

/// `api_proxy { ... }` with the listener it serves on.
#[derive(Debug, Clone)]
pub struct ApiProxy {
    /// Send the agent's token with requests that carry none.
    pub use_auto_auth_token: bool,
    /// The loopback address it listens on.
    pub address: SocketAddr,
}

/// A configuration error naming the field.
#[derive(Debug, thiserror::Error)]
#[error("agent config {file}: {message}")]
pub struct ConfigError {
    file: String,
    message: String,
}

/// Reads and checks the configuration file.
pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let err = |message: String| ConfigError {
        file: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let value = parse_text(&text, ext).map_err(err)?;
    let base = path.parent().unwrap_or(Path::new("."));
    from_value(&value, base).map_err(err)
}

/// Parses the file's text into one JSON document.
pub fn parse_text(text: &str, ext: &str) -> Result<Value, String> {
    match ext {
        "toml" => {
            let v: toml::Value = toml::from_str(text).map_err(|e| format!("invalid TOML: {e}"))?;
            serde_json::to_value(v).map_err(|e| format!("invalid TOML: {e}"))
        }
        "json" => serde_json::from_str(text).map_err(|_| "invalid JSON".to_string()),
        _ => {
            let body = hcl::parse(text).map_err(|e| format!("invalid HCL: {e}"))?;
            Ok(hcl_body(&body))
        }
    }
}

/// Blocks that may appear more than once (always lists).
const REPEATED: &[&str] = &["sink", "template", "env_template", "listener"];

/// Converts an HCL body to the document TOML would give.
fn hcl_body(body: &hcl::Body) -> Value {
    let mut out = Map::new();
    for attr in body.attributes() {
        let v: hcl::Value = attr.expr().clone().into();
        out.insert(
            attr.key().to_string(),
            serde_json::to_value(v).unwrap_or(Value::Null),
        );
    }
    for block in body.blocks() {
        let id = block.identifier();
        let mut inner = match hcl_body(block.body()) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if let Some(label) = block.labels().first() {
            let key = if id == "env_template" { "name" } else { "type" };
            inner.insert(key.into(), Value::String(label.as_str().to_string()));
        }
        let entry = out
            .entry(id.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::Object(inner));
        }
    }
    // Blocks that may appear once become tables, as in the TOML spelling.
    for (k, v) in out.iter_mut() {
        if REPEATED.contains(&k.as_str()) {
            continue;
        }
        if let Value::Array(list) = v {
            if list.len() == 1 && list[0].is_object() {
                *v = list.remove(0);
            }
        }
    }
    Value::Object(out)
}

/// A table being read: remembers which fields were taken so that the rest
/// can be refused by name.
struct Section<'a> {
    path: String,
    map: &'a Map<String, Value>,
    seen: BTreeSet<&'static str>,
}

type R<T> = Result<T, String>;

impl<'a> Section<'a> {
    fn new(path: &str, v: &'a Value) -> R<Section<'a>> {
        match v {
            Value::Object(map) => Ok(Section {
                path: path.to_string(),
                map,
                seen: BTreeSet::new(),
            }),
            _ => Err(format!("{path}: expected a block (table)")),
        }
    }

    fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.seen.insert(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn opt_str(&mut self, name: &'static str) -> R<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{}: expected a string", self.field(name))),
        }
    }

    fn str(&mut self, name: &'static str) -> R<String> {
        match self.opt_str(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(format!("{}: required", self.field(name))),
        }
    }

    fn bool(&mut self, name: &'static str, default: bool) -> R<bool> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" => Ok(true),
            Some(Value::String(s)) if s == "false" => Ok(false),
            Some(_) => Err(format!("{}: expected true or false", self.field(name))),
        }
    }

    fn duration(&mut self, name: &'static str, default: Duration) -> R<Duration> {
        let field = self.field(name);
        match self.get(name) {
            None => Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Duration::from_secs)
                .ok_or_else(|| format!("{field}: expected a duration such as \"30s\"")),
            Some(Value::String(s)) => parse_duration(s).ok_or_else(|| {
                format!("{field}: invalid duration {s:?} (such as \"30s\", \"5m\")")
            }),
            Some(_) => Err(format!("{field}: expected a duration such as \"30s\"")),
        }
    }

    fn mode(&mut self, name: &'static str, default: u32) -> R<u32> {
        let field = self.field(name);
        let bad = || format!("{field}: expected an octal file mode such as \"0600\"");
        let digits = match self.get(name) {
            None => return Ok(default),
            // HCL and TOML read `0600` as the number 600: its digits are the mode.
            Some(Value::Number(n)) => n.as_u64().ok_or_else(bad)?.to_string(),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(_) => return Err(bad()),
        };
        let mode = u32::from_str_radix(digits.trim_start_matches("0o"), 8).map_err(|_| bad())?;
        if mode > 0o777 {
            return Err(bad());
        }
        Ok(mode)
    }

    fn str_list(&mut self, name: &'static str) -> R<Option<Vec<String>>> {
        let field = self.field(name);
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(format!("{field}: expected a list of strings")),
                })
                .collect::<R<Vec<_>>>()
                .map(Some),
            Some(_) => Err(format!("{field}: expected a list of strings")),
        }
    }

    fn child(&mut self, name: &'static str) -> R<Option<Section<'a>>> {
        let path = self.field(name);
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(list)) if list.len() == 1 => Section::new(&path, &list[0]).map(Some),
            Some(Value::Array(_)) => Err(format!("{path}: only one block is allowed")),
            Some(v) => Section::new(&path, v).map(Some),
        }
    }

    fn children(&mut self, name: &'static str) -> R<Vec<Section<'a>>> {
        let path = self.field(name);
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, v)| Section::new(&format!("{path}[{i}]"), v))
                .collect(),
            Some(v) => Ok(vec![Section::new(&path, v)?]),
        }
    }

    /// Refuses any field that was not read.
    fn finish(self) -> R<()> {
        for key in self.map.keys() {
            if !self.seen.contains(key.as_str()) {
                return Err(format!("{}: unknown field", self.field(key)));
            }
        }
        Ok(())
    }
}

/// A Go-style duration: `90s`, `5m`, `1h30m`, `250ms`, or plain seconds
/// (Vault's grammar, [`coffer_core::policy::duration::parse`]).
pub fn parse_duration(s: &str) -> Option<Duration> {
    coffer_core::policy::duration::parse(s)
}

/// Builds the configuration from the parsed document; `base` resolves
/// relative `source` paths.
pub fn from_value(doc: &Value, base: &Path) -> R<AgentConfig> {
    let mut top = Section::new("", doc)?;
    let vault = match top.child("vault")? {
        None => VaultConfig::default(),
        Some(mut v) => {
            let c = VaultConfig {
                address: v.opt_str("address")?,
                ca_cert: v.opt_str("ca_cert")?.map(PathBuf::from),
                tls_skip_verify: v.bool("tls_skip_verify", false)?,
            };
            v.finish()?;
            c
        }
    };
    let auto_auth = match top.child("auto_auth")? {
        Some(a) => auto_auth(a)?,
        None => return Err("auto_auth: required (a method and its sinks)".into()),
    };
    let template_config = match top.child("template_config")? {
        None => TemplateConfig {
            static_secret_render_interval: DEFAULT_STATIC_INTERVAL,
            exit_on_retry_failure: false,
        },
        Some(mut t) => {
            let c = TemplateConfig {
                static_secret_render_interval: t
                    .duration("static_secret_render_interval", DEFAULT_STATIC_INTERVAL)?,
                exit_on_retry_failure: t.bool("exit_on_retry_failure", false)?,
            };
            if c.static_secret_render_interval.is_zero() {
                return Err(
                    "template_config.static_secret_render_interval: must be more than 0".into(),
                );
            }
            t.finish()?;
            c
        }
    };
    let mut templates = Vec::new();
    for t in top.children("template")? {
        templates.push(template(t, base)?);
    }
    let mut env_templates = Vec::new();
    for mut e in top.children("env_template")? {
        let name = e.str("name")?;
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!(
                "{}: not a valid environment variable name",
                e.field("name")
            ));
        }
        let contents = e.str("contents")?;
        e.finish()?;
        env_templates.push(EnvTemplate { name, contents });
    }
    let exec = match top.child("exec")? {
        None => None,
        Some(mut x) => {
            let command = x
                .str_list("command")?
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{}: required (a list: program and arguments)",
                        x.field("command")
                    )
                })?;
            let restart = match x.opt_str("restart_on_secret_changes")?.as_deref() {
                None | Some("always") => Restart::Always,
                Some("never") => Restart::Never,
                Some(_) => {
                    return Err(format!(
                        "{}: expected \"always\" or \"never\"",
                        x.field("restart_on_secret_changes")
                    ))
                }
            };
            let signal = match x.opt_str("restart_stop_signal")? {
                None => libc::SIGTERM,
                Some(s) => signal_number(&s).ok_or_else(|| {
                    format!("{}: unknown signal {s:?}", x.field("restart_stop_signal"))
                })?,
            };
            let kill = x.duration("restart_kill_timeout", Duration::from_secs(30))?;
            x.finish()?;
            Some(ExecConfig {
                command,
                restart_on_secret_changes: restart,
                restart_stop_signal: signal,
                restart_kill_timeout: kill,
            })
        }
    };
    if exec.is_some() && env_templates.is_empty() && templates.is_empty() {
        return Err("exec: needs at least one env_template or template".into());
    }
    if !env_templates.is_empty() && exec.is_none() {
        return Err(
            "env_template: needs an exec block (the process that gets the environment)".into(),
        );
    }
    let proxy = top.child("api_proxy")?;
    let listeners = top.children("listener")?;
    let api_proxy = match proxy {
        None => {
            if !listeners.is_empty() {
                return Err("listener: only serves the api_proxy; add an api_proxy block".into());
            }
            None
        }
        Some(mut p) => {
            let use_token = p.bool("use_auto_auth_token", false)?;
            p.finish()?;
            let mut listeners = listeners.into_iter();
            let (Some(l), None) = (listeners.next(), listeners.next()) else {
                return Err("listener: api_proxy needs exactly one listener \"tcp\" block".into());
            };
            Some(ApiProxy {
                use_auto_auth_token: use_token,
                address: listener(l)?,
            })
        }
    };
    let exit_after_auth = top.bool("exit_after_auth", false)?;
    // Fields of Vault Agent that change nothing here.
    let _ = top.opt_str("pid_file")?;
    top.finish()?;
    Ok(AgentConfig {
        vault,
        auto_auth,
        template_config,
        templates,
        env_templates,
        exec,
        api_proxy,
        exit_after_auth,
    })
}

fn listener(mut l: Section<'_>) -> R<SocketAddr> {
    let kind = l.str("type")?;
    if kind != "tcp" {
        return Err(format!("{}: only \"tcp\" is supported", l.field("type")));
    }
    let address = l.str("address")?;
    let addr: SocketAddr = address
        .parse()
        .map_err(|_| format!("{}: expected IP:PORT", l.field("address")))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{}: must be a loopback address (the proxy lends the agent's token to its callers)",
            l.field("address")
        ));
    }
    if !l.bool("tls_disable", false)? {
        return Err(format!(
            "{}: must be true (the loopback proxy serves plain HTTP)",
            l.field("tls_disable")
        ));
    }
    l.finish()?;
    Ok(addr)
}

fn auto_auth(mut a: Section<'_>) -> R<AutoAuth> {
    let mut m = a
        .child("method")?
        .ok_or_else(|| "auto_auth.method: required".to_string())?;
    let kind = m.str("type")?;
    let mount_path = m.opt_str("mount_path")?;
    let mount = |default: &str| -> String {
        mount_path
            .clone()
            .unwrap_or_else(|| format!("auth/{default}"))
            .trim_matches('/')
            .to_string()
    };
    let method = {
        let mut c = m
            .child("config")?
            .ok_or_else(|| format!("{}: required", m.field("config")))?;
        let method = match kind.as_str() {
            "approle" => Method::AppRole {
                mount_path: mount("approle"),
                role_id_file_path: c.str("role_id_file_path")?.into(),
                secret_id_file_path: c.str("secret_id_file_path")?.into(),
                remove_secret_id_file_after_reading: c
                    .bool("remove_secret_id_file_after_reading", false)?,
            },
            "jwt" => Method::Jwt {
                mount_path: mount("jwt"),
                path: c.str("path")?.into(),
                role: c.str("role")?,
                remove_jwt_after_reading: c.bool("remove_jwt_after_reading", true)?,
            },
            "token_file" => Method::TokenFile {
                token_file_path: c.str("token_file_path")?.into(),
            },
            _ => {
                return Err(format!(
                    "{}: unsupported method {kind:?} (approle, jwt or token_file)",
                    m.field("type")
                ))
            }
        };
        c.finish()?;
        method
    };
    let min_backoff = m.duration("min_backoff", Duration::from_secs(1))?;
    let max_backoff = m.duration("max_backoff", Duration::from_secs(300))?;
    m.finish()?;
    if min_backoff.is_zero() || max_backoff < min_backoff {
        return Err(
            "auto_auth.method: min_backoff must be more than 0 and at most max_backoff".into(),
        );
    }
    let mut sinks = Vec::new();
    for mut s in a.children("sink")? {
        let kind = s.str("type")?;
        if kind != "file" {
            return Err(format!(
                "{}: only \"file\" sinks are supported",
                s.field("type")
            ));
        }
        let mut c = s
            .child("config")?
            .ok_or_else(|| format!("{}: required", s.field("config")))?;
        let sink = FileSink {
            path: c.str("path")?.into(),
            mode: c.mode("mode", 0o600)?,
        };
        c.finish()?;
        s.finish()?;
        sinks.push(sink);
    }
    a.finish()?;
    Ok(AutoAuth {
        method,
        sinks,
        min_backoff,
        max_backoff,
    })
}

fn template(mut t: Section<'_>, base: &Path) -> R<TemplateSpec> {
    let source = t.opt_str("source")?;
    let contents = t.opt_str("contents")?;
    let (contents, name) = match (source, contents) {
        (Some(src), None) => {
            let p = base.join(&src);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("{}: cannot read {src}: {e}", t.field("source")))?;
            (text, src)
        }
        (None, Some(c)) => (c, String::new()),
        _ => {
            return Err(format!(
                "{}: exactly one of source and contents is required",
                t.path
            ))
        }
    };
    let destination: PathBuf = t.str("destination")?.into();
    let perms = t.mode("perms", 0o600)?;
    let command = match t.get("command") {
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(Command::Shell(s.clone())),
        Some(Value::Array(_)) => t
            .str_list("command")?
            .filter(|c| !c.is_empty())
            .map(Command::Argv),
        Some(_) => {
            return Err(format!(
                "{}: expected a string or a list",
                t.field("command")
            ))
        }
    };
    let command_timeout = t.duration("command_timeout", Duration::from_secs(30))?;
    if let Some(d) = t.opt_str("left_delimiter")? {
        if d != "{{" {
            return Err(format!(
                "{}: only \"{{{{\" is supported",
                t.field("left_delimiter")
            ));
        }
    }
    t.finish()?;
    let name = if name.is_empty() {
        destination.display().to_string()
    } else {
        name
    };
    Ok(TemplateSpec {
        contents,
        name,
        destination,
        perms,
        command,
        command_timeout,
    })
}

/// A signal by name (`SIGTERM`, `TERM`, `SIGHUP`, ...).
fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim().trim_start_matches("SIG");
    Some(match n {
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "KILL" => libc::SIGKILL,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hcl(text: &str) -> R<AgentConfig> {
        from_value(&parse_text(text, "hcl")?, Path::new("."))
    }

    fn toml(text: &str) -> R<AgentConfig> {
        from_value(&parse_text(text, "toml")?, Path::new("."))
    }

    const APPROLE_HCL: &str = r#"
vault { address = "http://127.0.0.1:8200" }
auto_auth {
  method "approle" {
    config = {
      role_id_file_path = "/run/role_id"
      secret_id_file_path = "/run/secret_id"
      remove_secret_id_file_after_reading = true
    }
  }
  sink "file" { config = { path = "/run/token", mode = 0640 } }
}
template_config { static_secret_render_interval = "2s" }
template {
  contents = "{{ with secret \"secret/data/app\" }}{{ .Data.data.pw }}{{ end }}"
  destination = "/run/app.conf"
  perms = "0640"
  command = "echo done"
}
"#;

    #[test]
    fn vault_agent_hcl_parses() {
        let c = hcl(APPROLE_HCL).unwrap();
        assert_eq!(c.vault.address.as_deref(), Some("http://127.0.0.1:8200"));
        match &c.auto_auth.method {
            Method::AppRole {
                mount_path,
                remove_secret_id_file_after_reading,
                ..
            } => {
                assert_eq!(mount_path, "auth/approle");
                assert!(remove_secret_id_file_after_reading);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.auto_auth.sinks[0].mode, 0o640);
        assert_eq!(c.templates.len(), 1);
        assert_eq!(c.templates[0].perms, 0o640);
        assert_eq!(
            c.template_config.static_secret_render_interval,
            Duration::from_secs(2)
        );
        assert!(matches!(c.templates[0].command, Some(Command::Shell(_))));
    }

    #[test]
    fn the_toml_spelling_is_the_same_config() {
        let c = toml(
            r#"
[auto_auth.method]
type = "jwt"
mount_path = "auth/k8s"
config = { path = "/var/run/secrets/token", role = "app", remove_jwt_after_reading = false }

[[auto_auth.sink]]
type = "file"
config = { path = "/run/token" }

[[env_template]]
name = "DB_PASSWORD"
contents = "x"

[exec]
command = ["/app", "--serve"]
restart_on_secret_changes = "never"

[api_proxy]
use_auto_auth_token = true

[[listener]]
type = "tcp"
address = "127.0.0.1:8100"
tls_disable = true
"#,
        )
        .unwrap();
        assert!(
            matches!(&c.auto_auth.method, Method::Jwt { mount_path, remove_jwt_after_reading: false, .. } if mount_path == "auth/k8s")
        );
        assert_eq!(c.auto_auth.sinks[0].mode, 0o600);
        assert_eq!(
            c.exec.as_ref().unwrap().restart_on_secret_changes,
            Restart::Never
        );
        assert!(c.api_proxy.as_ref().unwrap().use_auto_auth_token);
    }

    #[test]
    fn malformed_configs_name_the_field() {
        let cases = [
            (APPROLE_HCL.replace("role_id_file_path", "role_id_path"), "auto_auth.method.config.role_id_file_path: required"),
            (APPROLE_HCL.replace("remove_secret_id_file_after_reading = true", "remove_secret_id_file_after_reading = true\n      bogus = 1"), "auto_auth.method.config.bogus: unknown field"),
            (APPROLE_HCL.replace("remove_secret_id_file_after_reading = true", "remove_secret_id_file_after_reading = \"yes\""), "auto_auth.method.config.remove_secret_id_file_after_reading: expected true or false"),
            (APPROLE_HCL.replace("\"2s\"", "\"soon\""), "template_config.static_secret_render_interval: invalid duration"),
            (APPROLE_HCL.replace("perms = \"0640\"", "perms = \"rw\""), "template[0].perms: expected an octal file mode"),
            (APPROLE_HCL.replace("method \"approle\"", "method \"ldap\""), "auto_auth.method.type: unsupported method"),
            (APPROLE_HCL.replace("destination = \"/run/app.conf\"", ""), "template[0].destination: required"),
            (APPROLE_HCL.replace("vault {", "vaults {"), "vaults: unknown field"),
        ];
        for (text, want) in cases {
            let e = hcl(&text).unwrap_err();
            assert!(e.starts_with(want), "{e} (wanted {want})");
        }
        let e = toml("[auto_auth.method]\ntype = \"approle\"\n").unwrap_err();
        assert_eq!(e, "auto_auth.method.config: required");
        let e = toml(
            "[auto_auth.method]\ntype = \"token_file\"\nconfig = { token_file_path = \"/t\" }\n[api_proxy]\n[[listener]]\ntype = \"tcp\"\naddress = \"0.0.0.0:8100\"\ntls_disable = true\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("listener[0].address: must be a loopback"),
            "{e}"
        );
        let e = toml("[auto_auth.method]\ntype = \"token_file\"\nconfig = { token_file_path = \"/t\" }\n[[env_template]]\nname = \"A\"\ncontents = \"x\"\n").unwrap_err();
        assert!(e.starts_with("env_template: needs an exec block"), "{e}");
        assert!(parse_text("vault {", "hcl")
            .unwrap_err()
            .starts_with("invalid HCL"));
    }

    /// The README's examples parse (kept in step by hand: edit both).
    #[test]
    fn the_readme_examples_parse() {
        let general = r##"vault {
  address = "https://coffer.internal:8200"
  ca_cert = "/etc/coffer/ca.pem"
}

auto_auth {
  method "approle" {
    config = {
      role_id_file_path   = "/etc/coffer/role_id"
      secret_id_file_path = "/etc/coffer/secret_id"
      remove_secret_id_file_after_reading = true
    }
  }
  sink "file" { config = { path = "/run/coffer/token" } }   # mode 0600 by default
}

template_config { static_secret_render_interval = "5m" }    # the fallback poll

template {
  contents    = <<EOT
{{ with secret "secret/data/app/db" }}password={{ .Data.data.password }}{{ end }}
{{ with secret "database/creds/app" }}user={{ .Data.username }} pass={{ .Data.password }}{{ end }}
EOT
  destination = "/run/app/config.ini"
  perms       = "0600"                 # the default (Vault Agent's is 0644)
  command     = "systemctl reload app" # run after each render that changed the file
}
"##;
        let c = hcl(general).unwrap();
        assert_eq!(c.templates.len(), 1);
        let k8s = r##"vault {
  address = "https://coffer.coffer.svc:8200"
  ca_cert = "/etc/coffer/ca.pem"
}
auto_auth {
  method "jwt" {
    mount_path = "auth/kubernetes"
    config = {
      path = "/var/run/secrets/coffer/token"   # projected service-account token
      role = "web"
      remove_jwt_after_reading = false         # the kubelet rotates it in place
    }
  }
  sink "file" { config = { path = "/home/app/.coffer-token" } }
}
env_template "DATABASE_PASSWORD" {
  contents = "{{ with secret \"secret/data/shop/db\" }}{{ .Data.data.password }}{{ end }}"
}
exec {
  command = ["/app/server"]
  restart_on_secret_changes = "always"
}
"##;
        let c = hcl(k8s).unwrap();
        assert!(
            matches!(&c.auto_auth.method, Method::Jwt { mount_path, remove_jwt_after_reading: false, .. } if mount_path == "auth/kubernetes")
        );
        assert_eq!(c.env_templates[0].name, "DATABASE_PASSWORD");
        assert_eq!(c.exec.unwrap().restart_on_secret_changes, Restart::Always);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }
}
