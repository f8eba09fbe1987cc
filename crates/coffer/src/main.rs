//! The `coffer` command: server, operator and client commands, and the scanner.
//!
//! The binary is thin: client commands talk to a server over the HTTP API,
//! exactly as `vault` does; `server` starts one; `scan` calls the scanner
//! library directly.

use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc: the server allocates per request on every core, where glibc's
/// arenas contend; mimalloc's thread-local heaps measured faster here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(unsafe_code)] // declaring a foreign function; see the SAFETY comment at its one call
extern "C" {
    /// mimalloc's `mi_collect`, part of the library the `mimalloc` crate
    /// links (the crate binds it only behind a feature needing another crate).
    fn mi_collect(force: bool);
}

/// Gives memory freed after a large request back to the OS: mimalloc keeps
/// freed pages of a thread's heap for reuse, so one 32 MiB body would
/// otherwise stay resident.
#[allow(unsafe_code)]
pub(crate) fn return_freed_memory() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread
    // at any time; it only frees or decommits memory mimalloc owns.
    unsafe { mi_collect(true) }
}

mod agent;
mod argv;
mod client;
mod cmd;
mod input;
mod output;
mod prompt;

/// Coffer: secrets storage, access, rotation, audit and scanning.
#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "Client commands find the server in $COFFER_ADDR (or $VAULT_ADDR, or -address),\n\
        their token in $COFFER_TOKEN (or $VAULT_TOKEN, or the file `coffer login` writes),\n\
        and the certificate to trust in $COFFER_CACERT (or $VAULT_CACERT, or -ca-cert).\n\
        Flags may be written as `vault` takes them, with one dash: -format=json.\n\
        Exit codes, as `vault`: 0 success, 1 usage error, 2 other errors (`status` says\n\
        what its mean; `scan` exits 1 on findings).\n\n\
        Start here:\n  \
        coffer server --dev        # prints the address to export and the root token\n  \
        coffer kv put secret/app user=ana\n  \
        coffer kv get secret/app"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a Coffer server (`--dev` for an unsealed in-memory one).
    Server(cmd::server::Args),
    /// Operator commands: init, unseal, seal, key-status, rotate, rekey, generate-root.
    Operator(cmd::operator::Args),
    /// Show the seal status of the server.
    Status(cmd::status::Args),
    /// Read and write versioned secrets in a KV v2 mount.
    Kv(cmd::kv::Args),
    /// Log in (token, userpass, approle, jwt) and store the token in ~/.coffer-token (0600).
    Login(cmd::login::Args),
    /// Create, look up, renew and revoke tokens; check their capabilities.
    Token(cmd::token::Args),
    /// Write, read, list, delete and format ACL policies.
    Policy(cmd::policy::Args),
    /// Enable, disable, list, tune and move auth methods.
    Auth(cmd::auth::Args),
    /// Enable, disable, list, tune and move secrets engines.
    Secrets(cmd::secrets::Args),
    /// Look up, renew and revoke leases.
    Lease(cmd::lease::Args),
    /// Read any API path (like `vault read`).
    Read(cmd::generic::ReadArgs),
    /// Write data to any API path (like `vault write`).
    Write(cmd::generic::WriteArgs),
    /// Patch data at any API path with a JSON merge patch (like `vault patch`).
    Patch(cmd::generic::WriteArgs),
    /// Delete any API path (like `vault delete`).
    Delete(cmd::generic::DeleteArgs),
    /// List the keys under any API path (like `vault list`).
    List(cmd::generic::ListArgs),
    /// Show the answer a wrapping token holds (once), like `vault unwrap`.
    Unwrap(cmd::unwrap::Args),
    /// A secret's lifecycle: owner, type, rotation policy; the inventory.
    Secret(cmd::secret::Args),
    /// Rotate a managed secret now through its rotator.
    Rotate(cmd::rotate::Args),
    /// Respond to a compromised secret: rotate it, revoke its readers and leases.
    Revoke(cmd::revoke::Args),
    /// Follow change events (KV writes, rotations, lease revocations) as JSON lines.
    Events(cmd::events::Args),
    /// Run a command with secrets from coffer:// references in its environment.
    Run(cmd::run::Args),
    /// Write a file with the coffer:// references of a template resolved (mode 0600).
    Inject(cmd::inject::Args),
    /// Find secrets in files, directories and git history.
    Scan(cmd::scan::Args),
    /// Verify audit logs; who read a secret; secrets nobody read.
    Audit(cmd::audit::Args),
    /// Log in, keep a token alive, render templates, run an app (like `vault agent`).
    Agent(agent::Args),
    /// The org secrets policy: init, show, apply, diff, history.
    #[command(name = "org-policy")]
    OrgPolicy(cmd::org_policy::Args),
    /// Check the acceptance criteria: Completed (0), Blocked (1), Aborted (3).
    Check(cmd::check::Args),
    /// Write the Secrets Management Plan from live state; sign it off.
    Plan(cmd::plan::Args),
    /// Review access: stale grants, over-shared secrets, decisions, export.
    Review(cmd::review::Args),
    /// Onboard a system from its coffer.app.toml: secrets, policy, role.
    Apply(cmd::apply::Args),
    /// Print a shell completion script.
    Completion {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
}

fn main() {
    let cli: Cli = argv::parse();
    // `login` is given its token on the command line: no "set a token" hint.
    let hint_token = !matches!(cli.command, Command::Login(_));
    let result = match cli.command {
        Command::Server(a) => cmd::server::run(a),
        Command::Operator(a) => cmd::operator::run(a),
        Command::Status(a) => cmd::status::run(a),
        Command::Kv(a) => cmd::kv::run(a),
        Command::Login(a) => cmd::login::run(a),
        Command::Token(a) => cmd::token::run(a),
        Command::Policy(a) => cmd::policy::run(a),
        Command::Auth(a) => cmd::auth::run(a),
        Command::Secrets(a) => cmd::secrets::run(a),
        Command::Lease(a) => cmd::lease::run(a),
        Command::Read(a) => cmd::generic::read(a),
        Command::Write(a) => cmd::generic::write(a),
        Command::Patch(a) => cmd::generic::patch(a),
        Command::Delete(a) => cmd::generic::delete(a),
        Command::List(a) => cmd::generic::list(a),
        Command::Unwrap(a) => cmd::unwrap::run(a),
        Command::Secret(a) => cmd::secret::run(a),
        Command::Rotate(a) => cmd::rotate::run(a),
        Command::Revoke(a) => cmd::revoke::run(a),
        Command::Events(a) => cmd::events::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Inject(a) => cmd::inject::run(a),
        Command::Scan(a) => cmd::scan::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Agent(a) => agent::run(a),
        Command::OrgPolicy(a) => cmd::org_policy::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Review(a) => cmd::review::run(a),
        Command::Apply(a) => cmd::apply::run(a),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "coffer", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            let token_set =
                !hint_token || client::Config::from_env(None).is_ok_and(|c| c.token.is_some());
            if let Some(hint) = client::hint(&e, token_set) {
                eprintln!("\n{hint}");
            }
            std::process::exit(2);
        }
    }
}
