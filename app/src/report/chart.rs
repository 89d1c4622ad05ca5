//! The report's trend chart: open violations per promise at the end of each of
//! the last twelve months, drawn with plotters into memory and encoded as PNG.
//!
//! Small multiples: one panel per promise, each on its own scale, so a promise
//! with a handful of violations reads as clearly beside one with thousands (on
//! one shared axis it would lie flat on the floor). Each panel is titled with
//! the promise and its latest count. The font is compiled in
//! (`reports/fonts/DejaVuSans.ttf`), so no system fontconfig is needed.

use std::sync::Once;

use plotters::prelude::*;

use super::{Report, TREND_MONTHS};

/// The chart's width; its height is [`height`]'s, by the number of promises.
pub const WIDTH: u32 = 880;
/// Panels per row.
const COLUMNS: u32 = 3;
/// One row of panels, in pixels.
const ROW_HEIGHT: u32 = 170;
const FONT: &[u8] = include_bytes!("../../../reports/fonts/DejaVuSans.ttf");

/// The chart's height for `promises` panels (one empty panel when none).
pub fn height(promises: usize) -> u32 {
    let rows = (promises.max(1) as u32).div_ceil(COLUMNS);
    rows * ROW_HEIGHT
}

/// Line colours, one per promise (repeating after ten).
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // A bundled font that does not load leaves the chart without text; the
        // lines are still drawn.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draw the trend of `report` as a PNG.
pub fn trend_png(report: &Report) -> Result<Vec<u8>, String> {
    register_font();
    let height = height(report.data.promises.len());
    let mut pixels = vec![255u8; (WIDTH * height * 3) as usize];
    draw(report, &mut pixels, height)?;
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, WIDTH, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|error| error.to_string())?;
        writer
            .write_image_data(&pixels)
            .map_err(|error| error.to_string())?;
    }
    Ok(png)
}

fn draw(report: &Report, pixels: &mut [u8], height: u32) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(text)?;
    let promises = &report.data.promises;
    let rows = height / ROW_HEIGHT;
    let panels = root.split_evenly((rows as usize, COLUMNS as usize));
    let months = &report.data.trend_months;
    for (index, (promise, panel)) in promises.iter().zip(panels.iter()).enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let highest = promise.trend.iter().copied().max().unwrap_or(0).max(1);
        let top = highest + highest / 8 + 1;
        let latest = promise.trend.last().copied().unwrap_or(0);
        let mut chart = ChartBuilder::on(panel)
            .margin(8)
            .caption(
                format!("{}: {latest}", promise.id),
                ("sans-serif", 14).into_font().color(&colour),
            )
            .x_label_area_size(20)
            .y_label_area_size(44)
            .build_cartesian_2d(0..TREND_MONTHS - 1, 0u64..top)
            .map_err(text)?;
        chart
            .configure_mesh()
            .x_labels(TREND_MONTHS)
            // The first month and the last: the span, without crowding.
            .x_label_formatter(&|index| {
                if *index == 0 || *index == TREND_MONTHS - 1 {
                    months.get(*index).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_labels(4)
            .label_style(("sans-serif", 11))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(text)?;
        chart
            .draw_series(LineSeries::new(
                promise
                    .trend
                    .iter()
                    .enumerate()
                    .map(|(month, open)| (month, *open)),
                colour.stroke_width(3),
            ))
            .map_err(text)?;
    }
    root.present().map_err(text)?;
    Ok(())
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}
