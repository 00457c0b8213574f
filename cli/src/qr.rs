//! Badges as QR codes: in the terminal, as PNG and as SVG. The text form is
//! base45, so the whole code uses the QR alphanumeric mode.

use std::path::Path;

use anyhow::Context;
use qrcode::render::{svg, unicode};
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module in PNG output.
const SCALE: usize = 8;
/// Quiet zone around the code, in modules.
const QUIET: usize = 4;

fn code(text: &str) -> anyhow::Result<QrCode> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .context("the badge text does not fit in a QR code")
}

/// The code drawn with Unicode half blocks, light on dark (readable by
/// phone cameras from a dark terminal).
pub fn terminal(text: &str) -> anyhow::Result<String> {
    Ok(code(text)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// The code as an SVG document.
pub fn svg(text: &str) -> anyhow::Result<String> {
    Ok(code(text)?
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// The code as a greyscale PNG.
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    let code = code(text)?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (mx, my) = (i % width + QUIET, i / width + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                let row = y * side;
                pixels[row + mx * SCALE..row + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).context("QR code too large")?;
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("encoding PNG")?;
        writer.write_image_data(&pixels).context("encoding PNG")?;
    }
    Ok(out)
}

/// Writes the PNG and/or SVG forms where asked.
pub fn save(text: &str, png_path: Option<&Path>, svg_path: Option<&Path>) -> anyhow::Result<()> {
    if let Some(p) = png_path {
        std::fs::write(p, png(text)?).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = svg_path {
        std::fs::write(p, svg(text)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
