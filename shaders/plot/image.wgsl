// The tissue image under the points: one quad over the image's extent in
// data units, sampled with bilinear filtering. Same view uniform as points.

struct View {
    center: vec2<f32>,
    scale: vec2<f32>,
    radius: vec2<f32>,
    _pad: vec2<f32>,
}

struct Image {
    // The image's width and height in data units.
    size: vec2<f32>,
    // How strongly the image shows through (1: as scanned).
    alpha: f32,
    _pad: f32,
}

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<uniform> image: Image;
@group(0) @binding(2) var tex: texture_2d<f32>;
@group(0) @binding(3) var samp: sampler;

struct Out {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
}

@vertex
fn vs(@builtin(vertex_index) vi: u32) -> Out {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let c = corners[vi];
    let p = (c * image.size - view.center) * view.scale * vec2<f32>(1.0, -1.0);
    var out: Out;
    out.pos = vec4<f32>(p, 0.0, 1.0);
    out.uv = c;
    return out;
}

@fragment
fn fs(in: Out) -> @location(0) vec4<f32> {
    let c = textureSample(tex, samp, in.uv);
    let bg = vec3<f32>(0.067, 0.067, 0.067);
    return vec4<f32>(mix(bg, c.rgb, image.alpha), 1.0);
}
