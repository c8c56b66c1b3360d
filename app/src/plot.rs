//! The spatial plot: points drawn by WebGPU as instanced discs (a million
//! points redraw in a frame; pan and zoom only change a uniform) over the
//! tissue image when there is one, with a Canvas 2D fallback for browsers
//! without WebGPU. Colours are computed on the CPU once per colouring, not
//! per frame.

use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};
use wgpu::util::DeviceExt;

const SHADER: &str = include_str!("../../shaders/plot/points.wgsl");
const IMAGE_SHADER: &str = include_str!("../../shaders/plot/image.wgsl");
pub const BACKGROUND: [f64; 3] = [0.067, 0.067, 0.067];

/// What part of the data the canvas shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub center: [f64; 2],
    /// Canvas pixels per data unit.
    pub pixels_per_unit: f64,
    /// Point radius in canvas pixels.
    pub radius_px: f64,
}

/// The extent of a point set and its typical spacing, measured once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    pub center: [f64; 2],
    /// The longer side of the bounding box.
    pub span: f64,
    pub spacing: f64,
}

impl Extent {
    pub fn of(xy: &[f32]) -> Extent {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in xy.chunks(2) {
            if p[0].is_finite() && p[1].is_finite() {
                x0 = x0.min(p[0] as f64);
                x1 = x1.max(p[0] as f64);
                y0 = y0.min(p[1] as f64);
                y1 = y1.max(p[1] as f64);
            }
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let span = (x1 - x0).max(y1 - y0).max(1e-9);
        Extent {
            center: [(x0 + x1) / 2.0, (y0 + y1) / 2.0],
            span,
            spacing: spacing(xy, [x0, y0], span),
        }
    }
}

impl Camera {
    /// Fits the extent into a `w` x `h` canvas at `zoom`.
    pub fn fit(e: &Extent, w: f64, h: f64, zoom: f64, center: Option<[f64; 2]>) -> Camera {
        let ppu = (w.min(h) - 24.0) / e.span * zoom;
        Camera {
            center: center.unwrap_or(e.center),
            pixels_per_unit: ppu,
            // Neighbouring spots nearly touch, as in a Visium plot.
            radius_px: (0.45 * e.spacing * ppu).clamp(0.75, 60.0),
        }
    }

    /// Data coordinates under a canvas pixel.
    pub fn to_data(&self, px: f64, py: f64, w: f64, h: f64) -> [f64; 2] {
        [
            self.center[0] + (px - w / 2.0) / self.pixels_per_unit,
            self.center[1] + (py - h / 2.0) / self.pixels_per_unit,
        ]
    }
}

/// The median distance from a point to its nearest neighbour, from up to
/// 2,000 points looked up in a uniform grid.
pub fn spacing(xy: &[f32], origin: [f64; 2], span: f64) -> f64 {
    let n = xy.len() / 2;
    if n < 2 {
        return span;
    }
    let side = ((n as f64).sqrt().ceil() as usize).clamp(1, 2048);
    let cell = span / side as f64 * (1.0 + 1e-9);
    let at = |v: f32, o: f64| (((v as f64 - o) / cell).floor().max(0.0) as usize).min(side - 1);
    let mut grid: Vec<Vec<u32>> = vec![Vec::new(); side * side];
    for (i, p) in xy.chunks(2).enumerate() {
        if p[0].is_finite() && p[1].is_finite() {
            grid[at(p[1], origin[1]) * side + at(p[0], origin[0])].push(i as u32);
        }
    }
    let step = n.div_ceil(2000).max(1);
    let mut dists = Vec::new();
    for i in (0..n).step_by(step) {
        let p = &xy[2 * i..2 * i + 2];
        if !(p[0].is_finite() && p[1].is_finite()) {
            continue;
        }
        let (cx, cy) = (at(p[0], origin[0]), at(p[1], origin[1]));
        let mut best = f64::MAX;
        // Widen the ring until a neighbour is found and no nearer one can hide.
        for r in 1..side {
            for gy in cy.saturating_sub(r)..=(cy + r).min(side - 1) {
                for gx in cx.saturating_sub(r)..=(cx + r).min(side - 1) {
                    for &j in &grid[gy * side + gx] {
                        if j as usize != i {
                            let q = &xy[2 * j as usize..2 * j as usize + 2];
                            let d = ((q[0] - p[0]) as f64).hypot((q[1] - p[1]) as f64);
                            best = best.min(d);
                        }
                    }
                }
            }
            if best <= (r as f64) * cell {
                break;
            }
        }
        if best < f64::MAX && best > 0.0 {
            dists.push(best);
        }
    }
    if dists.is_empty() {
        return span / (n as f64).sqrt();
    }
    dists.sort_by(f64::total_cmp);
    dists[dists.len() / 2]
}

/// The index of the point nearest to a data position, within `max_dist`.
pub fn nearest(xy: &[f32], at: [f64; 2], max_dist: f64) -> Option<usize> {
    let mut best = (max_dist * max_dist, None);
    for (i, p) in xy.chunks(2).enumerate() {
        let (dx, dy) = (p[0] as f64 - at[0], p[1] as f64 - at[1]);
        let d = dx * dx + dy * dy;
        if d <= best.0 {
            best = (d, Some(i));
        }
    }
    best.1
}

/// An image placed in data space: its pixels per data unit.
pub struct Backdrop<'a> {
    pub width: usize,
    pub height: usize,
    pub rgba: &'a [u8],
    pub scale: f64,
}

pub enum Renderer {
    Gpu(Box<GpuPlot>),
    /// Canvas 2D keeps its own copy of the points to redraw from, and the
    /// image on an off-screen canvas with its scale.
    Canvas2d {
        canvas: HtmlCanvasElement,
        xy: Vec<f32>,
        rgba: Vec<[u8; 4]>,
        image: Option<(HtmlCanvasElement, f64)>,
    },
}

impl Renderer {
    /// WebGPU when the browser offers it, else Canvas 2D.
    pub async fn new(canvas: HtmlCanvasElement) -> (Renderer, Option<String>) {
        match GpuPlot::new(canvas.clone()).await {
            Ok(g) => (Renderer::Gpu(Box::new(g)), None),
            Err(e) => (
                Renderer::Canvas2d {
                    canvas,
                    xy: vec![],
                    rgba: vec![],
                    image: None,
                },
                Some(e),
            ),
        }
    }

    /// Replaces the points and their colours (once per colouring).
    pub fn set_points(&mut self, xy: &[f32], colours: &[[u8; 4]]) {
        match self {
            Renderer::Gpu(g) => g.set_points(xy, colours),
            Renderer::Canvas2d { xy: p, rgba, .. } => {
                *p = xy.to_vec();
                *rgba = colours.to_vec();
            }
        }
    }

    /// Replaces the image under the points (once per result).
    pub fn set_image(&mut self, b: Option<Backdrop>) {
        match self {
            Renderer::Gpu(g) => g.set_image(b),
            Renderer::Canvas2d { image, .. } => *image = b.and_then(|b| image_canvas(&b)),
        }
    }

    /// Draws the image (when `with_image`) and the points through `cam`
    /// (every pan and zoom).
    pub fn draw(&self, cam: &Camera, with_image: bool) {
        match self {
            Renderer::Gpu(g) => g.draw(cam, with_image),
            Renderer::Canvas2d {
                canvas,
                xy,
                rgba,
                image,
            } => {
                let image = image.as_ref().filter(|_| with_image);
                draw_2d(canvas, xy, rgba, cam, image.map(|(c, s)| (c, *s)))
            }
        }
    }
}

/// An off-screen canvas holding the image, for Canvas 2D to scale.
fn image_canvas(b: &Backdrop) -> Option<(HtmlCanvasElement, f64)> {
    let doc = web_sys::window()?.document()?;
    let c: HtmlCanvasElement = doc.create_element("canvas").ok()?.dyn_into().ok()?;
    c.set_width(b.width as u32);
    c.set_height(b.height as u32);
    let ctx: CanvasRenderingContext2d = c.get_context("2d").ok()??.dyn_into().ok()?;
    let data = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
        wasm_bindgen::Clamped(b.rgba),
        b.width as u32,
        b.height as u32,
    )
    .ok()?;
    ctx.put_image_data(&data, 0.0, 0.0).ok()?;
    Some((c, b.scale))
}

pub struct GpuPlot {
    // Kept alive with the surface: the browser's instance must outlive it.
    _instance: wgpu::Instance,
    _adapter: wgpu::Adapter,
    surface: wgpu::Surface<'static>,
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::RenderPipeline,
    uniform: wgpu::Buffer,
    bind: wgpu::BindGroup,
    points: Option<wgpu::Buffer>,
    n: u32,
    size: (u32, u32),
    image_pipeline: wgpu::RenderPipeline,
    /// The image's bind group and its uniform (size in data units, alpha).
    image: Option<(wgpu::BindGroup, wgpu::Buffer)>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Point {
    xy: [f32; 2],
    rgba: [u8; 4],
}

/// A pipeline drawing triangles from `module`'s `vs` and `fs` onto the canvas.
fn render_pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    format: wgpu::TextureFormat,
    buffers: &[wgpu::VertexBufferLayout],
) -> wgpu::RenderPipeline {
    let buffers: Vec<Option<wgpu::VertexBufferLayout>> =
        buffers.iter().cloned().map(Some).collect();
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: None,
        layout: None,
        vertex: wgpu::VertexState {
            module,
            entry_point: Some("vs"),
            compilation_options: Default::default(),
            buffers: &buffers,
        },
        primitive: Default::default(),
        depth_stencil: None,
        multisample: Default::default(),
        fragment: Some(wgpu::FragmentState {
            module,
            entry_point: Some("fs"),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        multiview_mask: None,
        cache: None,
    })
}

impl GpuPlot {
    async fn new(canvas: HtmlCanvasElement) -> Result<GpuPlot, String> {
        let size = (canvas.width(), canvas.height());
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let surface = instance
            .create_surface(wgpu::SurfaceTarget::Canvas(canvas))
            .map_err(|e| format!("no WebGPU canvas ({e})"))?;
        let adapter = tessera_core::compute::gpu::request_adapter(&instance, Some(&surface))
            .await
            .map_err(|e| format!("no WebGPU adapter ({e})"))?;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tessera plot"),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("the WebGPU adapter refused a device ({e})"))?;
        let config = surface
            .get_default_config(&adapter, size.0, size.1)
            .ok_or("the WebGPU canvas has no usable format")?;
        surface.configure(&device, &config);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("points"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let attributes = wgpu::vertex_attr_array![0 => Float32x2, 1 => Unorm8x4];
        let layout = [wgpu::VertexBufferLayout {
            array_stride: std::mem::size_of::<Point>() as u64,
            step_mode: wgpu::VertexStepMode::Instance,
            attributes: &attributes,
        }];
        let pipeline = render_pipeline(&device, &module, config.format, &layout);
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("view"),
            size: 32,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("view"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            }],
        });
        let image_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("image"),
            source: wgpu::ShaderSource::Wgsl(IMAGE_SHADER.into()),
        });
        let image_pipeline = render_pipeline(&device, &image_module, config.format, &[]);
        Ok(GpuPlot {
            _instance: instance,
            _adapter: adapter,
            surface,
            device,
            queue,
            pipeline,
            uniform,
            bind,
            points: None,
            n: 0,
            size,
            image_pipeline,
            image: None,
        })
    }

    fn set_image(&mut self, b: Option<Backdrop>) {
        self.image = b.map(|b| {
            let size = wgpu::Extent3d {
                width: b.width as u32,
                height: b.height as u32,
                depth_or_array_layers: 1,
            };
            let texture = self.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("tissue image"),
                size,
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                // Plain bytes, like the points' colours: no sRGB decoding.
                format: wgpu::TextureFormat::Rgba8Unorm,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            });
            self.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                b.rgba,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(4 * b.width as u32),
                    rows_per_image: Some(b.height as u32),
                },
                size,
            );
            let u: [f32; 4] = [
                (b.width as f64 / b.scale) as f32,
                (b.height as f64 / b.scale) as f32,
                0.9,
                0.0,
            ];
            let uniform = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("image"),
                    contents: bytemuck::cast_slice(&u),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let sampler = self.device.create_sampler(&wgpu::SamplerDescriptor {
                mag_filter: wgpu::FilterMode::Linear,
                min_filter: wgpu::FilterMode::Linear,
                ..Default::default()
            });
            let view = texture.create_view(&Default::default());
            let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("image"),
                layout: &self.image_pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.uniform.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: uniform.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::TextureView(&view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::Sampler(&sampler),
                    },
                ],
            });
            (bind, uniform)
        });
    }

    fn set_points(&mut self, xy: &[f32], rgba: &[[u8; 4]]) {
        let pts: Vec<Point> = xy
            .chunks(2)
            .zip(rgba)
            .map(|(p, &c)| Point {
                xy: [p[0], p[1]],
                rgba: c,
            })
            .collect();
        self.n = pts.len() as u32;
        self.points = (!pts.is_empty()).then(|| {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("points"),
                    contents: bytemuck::cast_slice(&pts),
                    usage: wgpu::BufferUsages::VERTEX,
                })
        });
    }

    fn draw(&self, cam: &Camera, with_image: bool) {
        let (w, h) = (self.size.0 as f64, self.size.1 as f64);
        let u: [f32; 8] = [
            cam.center[0] as f32,
            cam.center[1] as f32,
            (2.0 * cam.pixels_per_unit / w) as f32,
            (2.0 * cam.pixels_per_unit / h) as f32,
            (2.0 * cam.radius_px / w) as f32,
            (2.0 * cam.radius_px / h) as f32,
            0.0,
            0.0,
        ];
        self.queue
            .write_buffer(&self.uniform, 0, bytemuck::cast_slice(&u));
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t)
            | wgpu::CurrentSurfaceTexture::Suboptimal(t) => t,
            _ => return,
        };
        let view = frame.texture.create_view(&Default::default());
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let [r, g, b] = BACKGROUND;
            let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("points"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color { r, g, b, a: 1.0 }),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                ..Default::default()
            });
            if let (Some((bind, _)), true) = (&self.image, with_image) {
                pass.set_pipeline(&self.image_pipeline);
                pass.set_bind_group(0, bind, &[]);
                pass.draw(0..6, 0..1);
            }
            if let Some(points) = &self.points {
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, &self.bind, &[]);
                pass.set_vertex_buffer(0, points.slice(..));
                pass.draw(0..6, 0..self.n);
            }
        }
        self.queue.submit([enc.finish()]);
        self.queue.present(frame);
    }
}

pub fn draw_2d(
    canvas: &HtmlCanvasElement,
    xy: &[f32],
    rgba: &[[u8; 4]],
    cam: &Camera,
    image: Option<(&HtmlCanvasElement, f64)>,
) {
    let Some(ctx) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let (w, h) = (canvas.width() as f64, canvas.height() as f64);
    ctx.set_fill_style_str("#111");
    ctx.fill_rect(0.0, 0.0, w, h);
    if let Some((img, scale)) = image {
        let k = cam.pixels_per_unit / scale;
        let _ = ctx.draw_image_with_html_canvas_element_and_dw_and_dh(
            img,
            -cam.center[0] * cam.pixels_per_unit + w / 2.0,
            -cam.center[1] * cam.pixels_per_unit + h / 2.0,
            img.width() as f64 * k,
            img.height() as f64 * k,
        );
    }
    let r = cam.radius_px.max(0.5);
    for (p, c) in xy.chunks(2).zip(rgba) {
        let x = (p[0] as f64 - cam.center[0]) * cam.pixels_per_unit + w / 2.0;
        let y = (p[1] as f64 - cam.center[1]) * cam.pixels_per_unit + h / 2.0;
        if x < -r || y < -r || x > w + r || y > h + r {
            continue;
        }
        ctx.set_fill_style_str(&format!("rgb({},{},{})", c[0], c[1], c[2]));
        ctx.fill_rect(x - r, y - r, 2.0 * r, 2.0 * r);
    }
}

/// Viridis at five stops, linearly interpolated.
pub fn viridis(t: f32) -> [u8; 4] {
    const STOPS: [[f32; 3]; 5] = [
        [68., 1., 84.],
        [59., 82., 139.],
        [33., 145., 140.],
        [94., 201., 98.],
        [253., 231., 37.],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let c = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f) as u8;
    [c(0), c(1), c(2), 255]
}

/// Colours of overlaid columns, in order (bright on the dark background).
pub const OVERLAY: [[u8; 3]; 6] = [
    [255, 214, 0],
    [255, 64, 32],
    [30, 144, 255],
    [0, 210, 90],
    [190, 70, 255],
    [220, 220, 220],
];

/// matplotlib's tab20, for categories (wrapping after 20).
pub fn category(i: usize) -> [u8; 4] {
    const TAB20: [u32; 20] = [
        0x1f77b4, 0xaec7e8, 0xff7f0e, 0xffbb78, 0x2ca02c, 0x98df8a, 0xd62728, 0xff9896, 0x9467bd,
        0xc5b0d5, 0x8c564b, 0xc49c94, 0xe377c2, 0xf7b6d2, 0x7f7f7f, 0xc7c7c7, 0xbcbd22, 0xdbdb8d,
        0x17becf, 0x9edae5,
    ];
    let c = TAB20[i % 20];
    [(c >> 16) as u8, (c >> 8) as u8, c as u8, 255]
}

/// The value at percentile `pct` (linear interpolation, NaNs ignored), as
/// cell2location's `vmax='p99.2'`.
pub fn percentile(values: &[f32], pct: f64) -> f32 {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    let pos = (pct / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64) as f32
}
