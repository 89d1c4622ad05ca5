//! `tillsyn subject`: where a person's data is, written privately.

use std::io::Write;

use tillsyn_app::engine::Engine;
use tillsyn_config::{self as config};

use super::{CliError, EXIT_OK};

/// `tillsyn subject`: where the index (and, asked, the servers) hold a
/// person, written to `out` (created 0600) or `stdout`. Verifying and
/// searching read the stores, and need their credentials; a lookup does not.
pub async fn subject(
    config_path: &std::path::Path,
    request: &tillsyn_app::subject::SubjectRequest,
    out: Option<&std::path::Path>,
    stdout: &mut dyn Write,
) -> Result<u8, CliError> {
    let config = if request.verify || request.search {
        config::load(config_path)?
    } else {
        config::load_offline(config_path)?
    };
    let engine = Engine::new(config)?;
    let rendered = tillsyn_app::subject::answer(&engine, request).await?;
    match out {
        Some(path) => tillsyn_app::privacy::write_private(path, rendered.as_bytes())?,
        None => stdout.write_all(rendered.as_bytes())?,
    }
    Ok(EXIT_OK)
}
