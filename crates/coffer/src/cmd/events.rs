//! `coffer events subscribe [-since=ID] TYPE`: prints change events as
//! they happen, one CloudEvents JSON object per line (like `vault events
//! subscribe`). TYPE is an event type or a glob (`*`, `kv-v2/*`); the
//! server shows only events for paths the token may read.

use crate::client::ConnectArgs;

/// Arguments of `coffer events`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print events of a type (or glob) as JSON lines until interrupted.
    #[command(after_help = "Examples:\n  \
        coffer events subscribe 'kv-v2/*'\n  \
        coffer events subscribe coffer/rotation-finish")]
    Subscribe {
        /// Resume after this event id (the server replays what followed it,
        /// or sends a coffer/resync event).
        #[arg(long, value_name = "ID")]
        since: Option<String>,
        /// The event type or glob.
        event_type: String,
    },
}

/// Runs `coffer events`, returning the exit code.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let client = a.connect.client()?;
    match a.command {
        Command::Subscribe { since, event_type } => {
            let mut sub = client.subscribe(&event_type, since.as_deref())?;
            use std::io::Write as _;
            let mut out = std::io::stdout();
            while let Some(ev) = sub.next_event()? {
                writeln!(out, "{}", ev.raw)?;
                out.flush()?;
            }
            eprintln!("coffer events: the server closed the stream");
            Ok(2)
        }
    }
}
