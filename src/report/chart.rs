//! The report's trend chart: open violations per promise at the end of each of
//! the last twelve months, drawn with plotters into memory and encoded as PNG.
//! The font is compiled in (`reports/fonts/DejaVuSans.ttf`), so no system
//! fontconfig is needed.

use std::sync::Once;

use plotters::prelude::*;

use super::{Report, TREND_MONTHS};

const WIDTH: u32 = 880;
const HEIGHT: u32 = 380;
const FONT: &[u8] = include_bytes!("../../reports/fonts/DejaVuSans.ttf");

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
    let mut pixels = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    draw(report, &mut pixels)?;
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|error| error.to_string())?;
        writer
            .write_image_data(&pixels)
            .map_err(|error| error.to_string())?;
    }
    Ok(png)
}

fn draw(report: &Report, pixels: &mut [u8]) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(text)?;
    let promises = &report.data.promises;
    let highest = promises
        .iter()
        .flat_map(|promise| promise.trend.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let top = highest + highest / 10 + 1;
    let months = report.data.trend_months.clone();
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(30)
        .y_label_area_size(56)
        .build_cartesian_2d(0..TREND_MONTHS - 1, 0u64..top)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_labels(TREND_MONTHS)
        .x_label_formatter(&|index| months.get(*index).cloned().unwrap_or_default())
        .y_labels(6)
        .label_style(("sans-serif", 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(text)?;
    for (index, promise) in promises.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                promise
                    .trend
                    .iter()
                    .enumerate()
                    .map(|(month, open)| (month, *open)),
                colour.stroke_width(3),
            ))
            .map_err(text)?
            .label(promise.id.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(3))
            });
    }
    if !promises.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(text)?;
    }
    root.present().map_err(text)?;
    Ok(())
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}
