// Spatial plot: one instanced quad per point, cut to a disc in the fragment
// stage. Data y grows downwards (image pixels), as in the tissue image.

struct View {
    center: vec2<f32>,
    // NDC units per data unit, x and y.
    scale: vec2<f32>,
    // Point radius in NDC, x and y.
    radius: vec2<f32>,
    _pad: vec2<f32>,
}

@group(0) @binding(0) var<uniform> view: View;

struct Out {
    @builtin(position) pos: vec4<f32>,
    @location(0) color: vec4<f32>,
    @location(1) corner: vec2<f32>,
}

@vertex
fn vs(@builtin(vertex_index) vi: u32, @location(0) xy: vec2<f32>, @location(1) color: vec4<f32>) -> Out {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(-1.0, 1.0),
        vec2<f32>(-1.0, 1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
    );
    let c = corners[vi];
    let p = (xy - view.center) * view.scale * vec2<f32>(1.0, -1.0) + c * view.radius;
    var out: Out;
    out.pos = vec4<f32>(p, 0.0, 1.0);
    out.color = color;
    out.corner = c;
    return out;
}

@fragment
fn fs(in: Out) -> @location(0) vec4<f32> {
    if dot(in.corner, in.corner) > 1.0 {
        discard;
    }
    return in.color;
}
