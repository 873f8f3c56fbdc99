"""ntc-view's window: glfw (OpenGL 4.5 core) + moderngl around viewer/renderer.Renderer.

Keys: 1 / 2 / 3 reference / load / sample, B / L reference / load format RGBA8 / BCn, F next
sample filter,
A averaging of stochastic frames while the view is still, D diff view, O overlay, Esc quit.
Mouse: left drag orbits, right or middle drag pans, the wheel zooms.

`--script` (a hidden test hook) is a comma-separated list of steps, one applied after each drawn
frame, through the same handlers the glfw callbacks call: a key ("1", "2", "3", "b", "l", "f",
"a", "d", "o", "esc"), "quit" (same as Esc), "orbit:DX:DY" / "pan:DX:DY" (a drag of DX, DY pixels),
"scroll:N", "screenshot:PATH" (the last drawn frame as PNG), "wait" (one more frame). The window
closes after the last step only if a step says so; the exit status is 0 on a clean close.
"""
from __future__ import annotations

import re
import sys
import warnings

from export.errors import NTCError, one_line

from export.decode.gl_context import GL_VERSION_REQUIRED, NTCGLError
from .material_bindings import FORMAT_NAMES, TextureFormats
from .feedback_tiles import FeedbackConfig
from .renderer import MODES, Renderer

# errors of one mode's resources: reported, and the window stays in the mode it was in
RECOVERABLE = NTCError

KEY_HELP = ("1-4 mode  B/L reference/load RGBA8|BCn  F filter  A average  D diff  O overlay  "
            "drag orbit/pan  wheel zoom  Esc quit")


class WindowApp:
    def __init__(self, glfw, window, renderer: Renderer, log):
        self.glfw = glfw
        self.window = window
        self.r = renderer
        self.log = log
        self.drag = None          # "orbit" / "pan"
        self.last = None          # cursor position at the previous event
        self.error: Exception | None = None

    # ---- handlers (the glfw callbacks and the test script both call these)
    def on_key(self, window, key, scancode, action, mods) -> None:
        glfw = self.glfw
        if action != glfw.PRESS:
            return
        try:
            if key == glfw.KEY_ESCAPE:
                glfw.set_window_should_close(self.window, True)
            elif key in (glfw.KEY_1, glfw.KEY_2, glfw.KEY_3, glfw.KEY_4):
                mode = MODES[key - glfw.KEY_1]
                if mode != self.r.mode:
                    self.log(f"mode: {mode}")
                    self.r.set_mode(mode)
            elif key in (glfw.KEY_B, glfw.KEY_L):
                which = "reference" if key == glfw.KEY_B else "load"
                fmt = FORMAT_NAMES[1 - FORMAT_NAMES.index(getattr(self.r.formats, which))]
                self.r.set_formats(**{which: fmt})
                self.log(f"{which} format: {fmt}")
            elif key == glfw.KEY_F:
                self.log(f"sample filter: {self.r.cycle_filter()}")
            elif key == glfw.KEY_A:
                self.r.accumulate = not self.r.accumulate
                self.log(f"averaging stochastic frames: {'on' if self.r.accumulate else 'off'}")
            elif key == glfw.KEY_D:
                self.r.set_diff(not self.r.diff)
                self.log(f"diff view: {'on' if self.r.diff else 'off'}")
            elif key == glfw.KEY_O:
                self.r.overlay = not self.r.overlay
        except RECOVERABLE as e:  # a material that cannot be compressed / decoded: stay
            self.log(f"ntc-view: error: {one_line(e)}"
                     f"; staying in {self.r.mode} mode")
        except Exception as e:  # raised out of the callback would be lost inside glfw
            self.error = e
            glfw.set_window_should_close(self.window, True)

    def on_button(self, window, button, action, mods) -> None:
        glfw = self.glfw
        if action == glfw.PRESS:
            self.drag = "orbit" if button == glfw.MOUSE_BUTTON_LEFT else "pan"
            self.last = glfw.get_cursor_pos(self.window)
        elif action == glfw.RELEASE:
            self.drag = None

    def on_cursor(self, window, x, y) -> None:
        if self.drag is None or self.last is None:
            self.last = (x, y)
            return
        dx, dy = x - self.last[0], y - self.last[1]
        self.last = (x, y)
        if self.drag == "orbit":
            self.r.camera.orbit(dx, dy)
        else:
            self.r.camera.pan(dx, dy, self.r.size[1])

    def on_scroll(self, window, xoff, yoff) -> None:
        self.r.camera.zoom(yoff)

    def on_resize(self, window, w, h) -> None:
        if w > 0 and h > 0:
            self.r.resize((w, h))

    # ---- the test hook
    def step(self, token: str) -> None:
        glfw = self.glfw
        keys = {"1": glfw.KEY_1, "2": glfw.KEY_2, "3": glfw.KEY_3, "4": glfw.KEY_4,
                "b": glfw.KEY_B, "l": glfw.KEY_L,
                "f": glfw.KEY_F, "a": glfw.KEY_A,
                "d": glfw.KEY_D, "o": glfw.KEY_O, "esc": glfw.KEY_ESCAPE,
                "quit": glfw.KEY_ESCAPE}
        name, _, rest = token.strip().lower().partition(":")
        if name in keys:
            self.on_key(self.window, keys[name], 0, glfw.PRESS, 0)
            self.on_key(self.window, keys[name], 0, glfw.RELEASE, 0)
        elif name in ("orbit", "pan"):
            dx, dy = (float(v) for v in rest.split(":"))
            self.drag, self.last = name, (0.0, 0.0)
            self.on_cursor(self.window, dx, dy)
            self.drag = None
        elif name == "scroll":
            self.on_scroll(self.window, 0.0, float(rest))
        elif name == "screenshot":
            from export.safe_files import atomic_write

            from export.images import encode_png
            path = token.strip().partition(":")[2]   # as given, not lower-cased
            atomic_write(path, encode_png(self.r.read()))
        elif name != "wait":
            raise ValueError(f"--script: unknown step '{token}'")


def _glfw_reason(caught, default: str) -> str:
    """The last GLFWError warning as plain text ("(65550) b'X11: ...'" -> "X11: ...")."""
    if not caught:
        return default
    text = str(caught[-1].message)
    m = re.match(r"^\(\d+\) b?['\"](.*)['\"]$", text, re.S)
    return (m.group(1) if m else text).strip().splitlines()[0]


def run_window(scene, args, provider, size: tuple[int, int], log, bcn_images=None) -> int:
    try:
        import glfw
        import moderngl
    except ImportError as e:
        raise NTCGLError(f"the window needs glfw and moderngl ({e.name} is missing); "
                         "or use --headless") from None
    with warnings.catch_warnings(record=True) as caught:  # glfw reports errors as warnings
        warnings.simplefilter("always")
        ok = glfw.init()
    if not ok:
        raise NTCGLError(f"cannot open a window (glfw.init failed: "
                         f"{_glfw_reason(caught, 'no display?')}); use --headless")
    window = None
    renderer = None
    ctx = None
    try:
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, GL_VERSION_REQUIRED // 100)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, GL_VERSION_REQUIRED % 100 // 10)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        title = f"ntc-view - {scene.path.name}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            window = glfw.create_window(size[0], size[1], title, None, None)
        if not window:
            raise NTCGLError(f"cannot open an OpenGL 4.5 core window "
                             f"({_glfw_reason(caught, 'the driver refused the context')}); "
                             f"use --headless")
        glfw.make_context_current(window)
        glfw.swap_interval(0)
        try:
            ctx = moderngl.create_context(require=GL_VERSION_REQUIRED)
        except Exception as e:
            raise NTCGLError(f"cannot use the window's OpenGL context: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") \
                from None
        fb = glfw.get_framebuffer_size(window)
        renderer = Renderer(ctx, scene, fb, mode=args.mode, filter_mode=args.filter,
                            ntc_provider=provider, overlay=True, timer_latency=2,
                            accumulate=not args.no_accumulate, log=log,
                            formats=TextureFormats.from_args(args), bcn_images=bcn_images,
                            precision=args.precision,
                            feedback=FeedbackConfig(tile_format=args.tile_format))
        renderer.status_lines = [KEY_HELP]
        if args.orbit:
            renderer.camera.turn(*args.orbit)
        if args.diff:
            renderer.set_diff(True)
        app = WindowApp(glfw, window, renderer, log)
        glfw.set_key_callback(window, app.on_key)
        glfw.set_mouse_button_callback(window, app.on_button)
        glfw.set_cursor_pos_callback(window, app.on_cursor)
        glfw.set_scroll_callback(window, app.on_scroll)
        glfw.set_framebuffer_size_callback(window, app.on_resize)
        script = [s for s in (args.script or "").split(",") if s.strip()]
        frames = 0
        while not glfw.window_should_close(window):
            glfw.poll_events()
            if app.error is not None:
                raise app.error
            renderer.render()
            ctx.copy_framebuffer(ctx.screen, renderer.targets["display"].fbo)
            glfw.swap_buffers(window)
            frames += 1
            if script:
                app.step(script.pop(0))
                if app.error is not None:
                    raise app.error
        log(f"closed after {frames} frames")
        return 0
    finally:
        if renderer is not None:
            renderer.release()
        if ctx is not None:
            ctx.release()
        if window is not None:
            glfw.destroy_window(window)
        glfw.terminate()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run ntc-view (viewer.cli)")
