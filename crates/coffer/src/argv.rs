//! Command-line compatibility with `vault`: single-dash long flags and exit codes.
//!
//! `vault` uses Go's flag package, so its users write `-mount=secret`,
//! `-format=json` or `-key-shares 3`. clap wants `--mount=secret`. Before
//! parsing we rewrite a token `-name` or `-name=value` into `--name...` when
//! `name` is a long flag of the command tree; anything else (short flags, a
//! lone `-` for stdin, values that merely start with a dash, and every token
//! after `--`) passes through untouched.

use std::collections::HashSet;
use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches};

/// Every long flag name (and alias) defined anywhere in the command tree.
fn long_flag_names(cmd: &clap::Command, names: &mut HashSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(aliases) = arg.get_long_and_visible_aliases() {
            names.extend(aliases.into_iter().map(str::to_owned));
        }
    }
    for sub in cmd.get_subcommands() {
        long_flag_names(sub, names);
    }
}

/// Rewrites Vault-style single-dash long flags to clap's double-dash form.
///
/// Only tokens starting with exactly one `-` followed by at least two
/// characters whose name (the part before any `=`) is a known long flag are
/// rewritten; everything after a bare `--` is left alone.
pub fn normalize<I>(args: I, known: &HashSet<String>) -> Vec<OsString>
where
    I: IntoIterator<Item = OsString>,
{
    let mut out = Vec::new();
    let mut passthrough = false;
    for arg in args {
        if passthrough {
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let rewritten = text
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-') && rest.chars().count() >= 2)
            .filter(|rest| known.contains(rest.split('=').next().unwrap_or(rest)))
            .map(|rest| OsString::from(format!("--{rest}")));
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

/// Parses `args` (program name first) into `C`, accepting Vault-style flags.
pub fn try_parse_from<C, I>(args: I) -> Result<C, clap::Error>
where
    C: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = OsString>,
{
    let mut cmd = C::command();
    let mut known = HashSet::new();
    long_flag_names(&cmd, &mut known);
    let args = normalize(args, &known);
    let mut matches = cmd
        .try_get_matches_from_mut(args.iter().cloned())
        .map_err(|e| name_whole_flag(e, &args))?;
    C::from_arg_matches_mut(&mut matches)
}

/// clap reads an unknown `-bogus` as the short flag `-b` followed by
/// `ogus`, and reports "unexpected argument '-b'". With Vault-style flags the
/// user meant a long flag: report the whole token instead.
fn name_whole_flag(e: clap::Error, args: &[OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let Some(ContextValue::String(short)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    if short.len() != 2 || short.starts_with("--") {
        return e;
    }
    let whole = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .filter_map(|a| a.to_str())
        .find(|a| a.starts_with(short.as_str()) && a.len() > 2 && !a.starts_with("--"));
    let Some(whole) = whole else {
        return e;
    };
    let name = whole.split('=').next().unwrap_or(whole);
    clap::Error::raw(
        ErrorKind::UnknownArgument,
        format!(
            "unknown flag '{name}': this command has no such flag \
             (flags are written -name or --name; see --help)\n"
        ),
    )
}

/// Parses the process arguments into `C`, accepting Vault-style flags.
///
/// Usage errors exit with code 1 as `vault` does (clap's default is 2, which
/// `vault` reserves for errors from the server), except under `coffer scan`,
/// where 1 means "findings" and every error exits 2; `--help` and
/// `--version` exit 0.
pub fn parse<C: CommandFactory + FromArgMatches>() -> C {
    match try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            // `scan` and `check` give 1 a meaning of their own (findings, blockers).
            let scan = std::env::args_os()
                .nth(1)
                .is_some_and(|a| a == "scan" || a == "check");
            let code = match (e.use_stderr(), scan) {
                (false, _) => 0,
                (true, true) => 2,
                (true, false) => 1,
            };
            // Printing can fail only if the terminal is gone; nothing to do then.
            let _ = e.print();
            std::process::exit(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        let known: HashSet<String> = ["mount", "format", "key-shares", "versions"]
            .into_iter()
            .map(String::from)
            .collect();
        normalize(args.iter().map(OsString::from), &known)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn rewrites_known_single_dash_long_flags() {
        assert_eq!(
            norm(&[
                "coffer",
                "kv",
                "get",
                "-mount=secret",
                "-format",
                "json",
                "foo"
            ]),
            [
                "coffer",
                "kv",
                "get",
                "--mount=secret",
                "--format",
                "json",
                "foo"
            ]
        );
        assert_eq!(norm(&["-key-shares=3"]), ["--key-shares=3"]);
        assert_eq!(norm(&["-versions=1,2"]), ["--versions=1,2"]);
    }

    #[test]
    fn leaves_other_tokens_alone() {
        // Short flags, a lone dash, unknown names, double-dash forms, values.
        assert_eq!(
            norm(&["-h", "-", "-vv", "--mount=x", "key=-mount", "-unknown=1"]),
            ["-h", "-", "-vv", "--mount=x", "key=-mount", "-unknown=1"]
        );
    }

    #[test]
    fn command_tree_is_consistent() {
        // Catches clashing flags (e.g. a subcommand's -version and clap's).
        crate::Cli::command().debug_assert();
    }

    #[test]
    fn vault_style_command_lines_parse() {
        let ok = |line: &str| {
            let args = line.split(' ').map(OsString::from);
            if let Err(e) = try_parse_from::<crate::Cli, _>(args) {
                panic!("{line}: {e}");
            }
        };
        ok("coffer kv get -mount=secret -version=2 -field=a -format=json app");
        ok("coffer kv put -cas=0 secret/app a=b c=@f -");
        ok("coffer kv patch -method=rw -remove-data=a secret/app b=c");
        ok("coffer kv delete -versions=1,2 -versions 3 secret/app");
        ok("coffer kv metadata put -cas-required -max-versions=3 secret/app");
        ok("coffer kv metadata put -cas-required=false -custom-metadata=a=b secret/app");
        ok("coffer kv rollback -version=1 secret/app");
        ok("coffer operator init -key-shares=1 -key-threshold=1 -format=json");
        ok("coffer operator unseal -reset");
        ok("coffer status -address=http://127.0.0.1:1");
        ok("coffer login -format=json -");
        let bad = |line: &str| {
            let args = line.split(' ').map(OsString::from);
            assert!(try_parse_from::<crate::Cli, _>(args).is_err(), "{line}");
        };
        bad("coffer kv get");
        bad("coffer kv get -version=x secret/a");
        bad("coffer status -format=yaml");
        bad("coffer operator unseal -reset KEY");
        ok("coffer kv get -stage=previous secret/app");
        ok("coffer write -f sys/rotate");
        bad("coffer kv get -stage=previous -version=1 secret/app");
    }

    #[test]
    fn an_unknown_single_dash_flag_is_named_whole() {
        let err = |line: &str| {
            let args = line.split(' ').map(OsString::from);
            match try_parse_from::<crate::Cli, _>(args) {
                Ok(_) => panic!("{line} parsed"),
                Err(e) => e.to_string(),
            }
        };
        let text = err("coffer kv get -bogus secret/app");
        assert!(text.contains("'-bogus'"), "{text}");
        let text = err("coffer kv get -bogus=1 secret/app");
        assert!(text.contains("'-bogus'") && !text.contains("=1"), "{text}");
        // A double-dash unknown flag keeps clap's own message.
        let text = err("coffer kv get --bogus secret/app");
        assert!(text.contains("'--bogus'"), "{text}");
    }

    #[test]
    fn stops_after_double_dash() {
        assert_eq!(
            norm(&["-mount=a", "--", "-mount=b", "-format"]),
            ["--mount=a", "--", "-mount=b", "-format"]
        );
    }
}
