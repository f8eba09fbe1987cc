//! Reading a secret (unseal key, token) from the terminal without echo, or
//! from standard input when it is not a terminal.

use std::io::{BufRead as _, IsTerminal as _};

use zeroize::Zeroizing;

/// Asks for a secret: on a terminal, prompts `label` on stderr and reads
/// without echo; otherwise reads the first line of standard input.
/// Surrounding whitespace is removed.
pub fn secret(label: &str) -> std::io::Result<Zeroizing<String>> {
    let raw = if std::io::stdin().is_terminal() {
        Zeroizing::new(rpassword::prompt_password(label)?)
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    Ok(Zeroizing::new(raw.trim().to_owned()))
}
