//! `tillsyn __generate`: man pages and shell completions made from the CLI
//! definition itself, so they never fall behind it. The package build runs it
//! (`scripts/package`); it is hidden from `--help`.

use std::path::Path;

use clap_complete::Shell;

use super::CliError;

/// Write `tillsyn.1` and one `tillsyn-<command>.1` per command into `man`,
/// and the bash, zsh and fish completions into `completions`, for `command`
/// (the whole CLI). Returns the files written.
pub fn generate(
    command: clap::Command,
    man: Option<&Path>,
    completions: Option<&Path>,
) -> Result<Vec<String>, CliError> {
    let mut written = Vec::new();
    let mut command = command;
    command.build();
    if let Some(dir) = man {
        std::fs::create_dir_all(dir)?;
        let page = dir.join("tillsyn.1");
        write_page(&command, &page)?;
        written.push(page.display().to_string());
        for sub in command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
        {
            let name = format!("tillsyn-{}", sub.get_name());
            let sub = sub
                .clone()
                .name(name.clone())
                .bin_name(format!("tillsyn {}", sub.get_name()));
            let page = dir.join(format!("{name}.1"));
            write_page(&sub, &page)?;
            written.push(page.display().to_string());
        }
    }
    if let Some(dir) = completions {
        std::fs::create_dir_all(dir)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let path = clap_complete::generate_to(shell, &mut command, "tillsyn", dir)?;
            written.push(path.display().to_string());
        }
    }
    Ok(written)
}

/// One man page, section 1, with the version of this build.
fn write_page(command: &clap::Command, path: &Path) -> Result<(), CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("1")
        .source(format!("tillsyn {}", env!("CARGO_PKG_VERSION")))
        .manual("tillsyn manual")
        .render(&mut page)?;
    std::fs::write(path, page)?;
    Ok(())
}
