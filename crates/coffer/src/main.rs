//! The `coffer` command: server, operator and client commands, and the scanner.
//!
//! The binary is thin: client commands talk to a server over the HTTP API,
//! exactly as `vault` does; `server` starts one; `scan` calls the scanner
//! library directly.

use clap::{CommandFactory, Parser, Subcommand};

mod argv;
mod client;
mod cmd;
mod output;
mod prompt;

/// Coffer: secrets storage, access, rotation, audit and scanning.
#[derive(Parser)]
#[command(name = "coffer", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a Coffer server (`--dev` for an unsealed in-memory one).
    Server(cmd::server::Args),
    /// Operator commands: init, unseal, seal, key-status, rotate.
    Operator(cmd::operator::Args),
    /// Show the seal status of the server.
    Status(cmd::status::Args),
    /// Read and write versioned secrets in a KV v2 mount.
    Kv(cmd::kv::Args),
    /// Store a token for later commands (in a 0600 file).
    Login(cmd::login::Args),
    /// Find secrets in files, directories and git history.
    Scan(cmd::scan::Args),
    /// Verify audit logs; who read a secret; secrets nobody read.
    Audit(cmd::audit::Args),
    /// Print a shell completion script.
    Completion {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
}

fn main() {
    let cli: Cli = argv::parse();
    let result = match cli.command {
        Command::Server(a) => cmd::server::run(a),
        Command::Operator(a) => cmd::operator::run(a),
        Command::Status(a) => cmd::status::run(a),
        Command::Kv(a) => cmd::kv::run(a),
        Command::Login(a) => cmd::login::run(a),
        Command::Scan(a) => cmd::scan::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "coffer", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(2);
        }
    }
}
