//! From report data to what is sent: subject, plain text and HTML (handlebars
//! templates), the trend chart (PNG) and the open findings (CSV).
//!
//! The built-in templates are the files in `reports/<language>/`, compiled in.
//! `report.templates_dir` may hold any of `subject.hbs`, `report.txt.hbs` and
//! `report.html.hbs`; each one there replaces the built-in one. The HTML is
//! rendered with HTML escaping, the text and subject without (handlebars would
//! otherwise turn `å` into nothing odd but `=` and `'` into entities).

use std::path::Path;

use handlebars::Handlebars;

use super::{Report, chart};
use tillsyn_core::language::Language;

/// The content id of the chart in the mail.
pub const CHART_CID: &str = "trend-chart";

/// A rendered report.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain text body.
    pub text: String,
    /// HTML body, the chart referenced as `cid:trend-chart` (for the mail).
    pub html: String,
    /// HTML body, the chart referenced as `trend.png` (for files).
    pub html_file: String,
    /// The trend chart.
    pub png: Vec<u8>,
    /// Open findings at the month's end.
    pub csv: Vec<u8>,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template did not parse.
    #[error("report template {name}: {source}")]
    Template {
        /// Which.
        name: String,
        /// Why.
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    /// A template did not render.
    #[error("report template {name}: {source}")]
    Render {
        /// Which.
        name: String,
        /// Why.
        #[source]
        source: Box<handlebars::RenderError>,
    },
    /// An override template could not be read.
    #[error("cannot read report template {path}: {source}")]
    Read {
        /// Which.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The chart could not be drawn.
    #[error("trend chart: {0}")]
    Chart(String),
    /// The CSV could not be written.
    #[error("findings CSV: {0}")]
    Csv(#[from] csv::Error),
}

fn built_in(language: Language, name: &str) -> &'static str {
    match (language, name) {
        (Language::Sv, "subject.hbs") => include_str!("../../../reports/sv/subject.hbs"),
        (Language::Sv, "report.txt.hbs") => include_str!("../../../reports/sv/report.txt.hbs"),
        (Language::Sv, _) => include_str!("../../../reports/sv/report.html.hbs"),
        (Language::En, "subject.hbs") => include_str!("../../../reports/en/subject.hbs"),
        (Language::En, "report.txt.hbs") => include_str!("../../../reports/en/report.txt.hbs"),
        (Language::En, _) => include_str!("../../../reports/en/report.html.hbs"),
    }
}

fn template(language: Language, dir: Option<&Path>, name: &str) -> Result<String, RenderError> {
    if let Some(dir) = dir {
        let path = dir.join(name);
        if path.exists() {
            return std::fs::read_to_string(&path).map_err(|source| RenderError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    }
    Ok(built_in(language, name).to_owned())
}

fn engine(escape: bool) -> Handlebars<'static> {
    let mut engine = Handlebars::new();
    engine.set_strict_mode(true);
    if !escape {
        engine.register_escape_fn(handlebars::no_escape);
    }
    engine
}

fn render_one(
    engine: &mut Handlebars<'static>,
    name: &str,
    source: &str,
    data: &impl serde::Serialize,
) -> Result<String, RenderError> {
    engine
        .register_template_string(name, source)
        .map_err(|source| RenderError::Template {
            name: name.to_owned(),
            source: Box::new(source),
        })?;
    engine
        .render(name, data)
        .map_err(|source| RenderError::Render {
            name: name.to_owned(),
            source: Box::new(source),
        })
}

/// Render `report`, with templates from `templates_dir` where it has them.
pub fn render(report: &Report, templates_dir: Option<&Path>) -> Result<Rendered, RenderError> {
    let language = report.language;
    let mut text_engine = engine(false);
    let mut html_engine = engine(true);
    let subject = render_one(
        &mut text_engine,
        "subject.hbs",
        &template(language, templates_dir, "subject.hbs")?,
        &report.data,
    )?
    .lines()
    .map(str::trim)
    .filter(|line| !line.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    let text = render_one(
        &mut text_engine,
        "report.txt.hbs",
        &template(language, templates_dir, "report.txt.hbs")?,
        &report.data,
    )?;
    let html_source = template(language, templates_dir, "report.html.hbs")?;
    let mut data = report.data.clone();
    data.chart_src = format!("cid:{CHART_CID}");
    let html = render_one(&mut html_engine, "report.html.hbs", &html_source, &data)?;
    data.chart_src = "trend.png".to_owned();
    let html_file = render_one(&mut html_engine, "report.html.hbs", &html_source, &data)?;
    let png = chart::trend_png(report).map_err(RenderError::Chart)?;
    let csv = if report.data.full_csv {
        crate::output::spreadsheet_csv_of(&report.rows)?
    } else {
        crate::output::spreadsheet_csv_of(&report.counts)?
    };
    Ok(Rendered {
        subject,
        text,
        html,
        html_file,
        png,
        csv,
    })
}

/// Write a rendered report of `month` to `dir` (created 0700, files 0600):
/// report.html, report.txt, trend.png and the CSV. Returns the files' names.
pub fn write_files(
    rendered: &Rendered,
    month: super::Month,
    dir: &std::path::Path,
) -> std::io::Result<[String; 4]> {
    let names = [
        "report.html".to_owned(),
        "report.txt".to_owned(),
        "trend.png".to_owned(),
        format!("tillsyn-{month}.csv"),
    ];
    crate::privacy::create_private_dir(dir)?;
    let contents: [&[u8]; 4] = [
        rendered.html_file.as_bytes(),
        rendered.text.as_bytes(),
        &rendered.png,
        &rendered.csv,
    ];
    for (name, bytes) in names.iter().zip(contents) {
        crate::privacy::write_private(&dir.join(name), bytes)?;
    }
    Ok(names)
}
