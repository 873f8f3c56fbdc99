"""Orbit camera: yaw / pitch / distance around a target point, with pan and zoom (pyglm).

`OrbitCamera.frame(bounds_min, bounds_max)` places the target at the centre of the bounds and backs
off until the bounding sphere fits the vertical and horizontal field of view. Angles in radians;
world +Y is up (glTF).
"""
from __future__ import annotations

import math

import numpy as np

try:
    from pyglm import glm
except ImportError:  # PyGLM < 2.8
    import glm


class OrbitCamera:
    def __init__(self, fov_y_deg: float = 45.0):
        self.fov_y = math.radians(fov_y_deg)
        self.target = glm.vec3(0.0)
        self.yaw = math.radians(30.0)     # around +Y, 0 looks along -Z (eye on +Z)
        self.pitch = math.radians(15.0)   # above the horizon
        self.distance = 3.0
        self.radius = 1.0                 # of the framed bounds: near / far planes follow it

    # ------------------------------------------------------------------------------------------
    def frame(self, bounds_min, bounds_max, aspect: float = 1.0) -> None:
        lo = glm.vec3(*map(float, bounds_min))
        hi = glm.vec3(*map(float, bounds_max))
        self.target = (lo + hi) * 0.5
        self.radius = max(glm.length(hi - lo) * 0.5, 1e-6)
        half = min(self.fov_y, 2 * math.atan(math.tan(self.fov_y / 2) * max(aspect, 1e-6))) / 2
        self.distance = self.radius / math.sin(half) * 1.05

    @property
    def eye(self) -> glm.vec3:
        cp = math.cos(self.pitch)
        offset = glm.vec3(cp * math.sin(self.yaw), math.sin(self.pitch), cp * math.cos(self.yaw))
        return self.target + offset * self.distance

    def view(self) -> glm.mat4:
        return glm.lookAt(self.eye, self.target, glm.vec3(0.0, 1.0, 0.0))

    def projection(self, aspect: float) -> glm.mat4:
        near = max(self.distance - self.radius * 1.5, self.radius * 1e-3, 1e-4)
        far = self.distance + self.radius * 1.5
        return glm.perspective(self.fov_y, max(aspect, 1e-6), near, far)

    def view_projection(self, aspect: float) -> np.ndarray:
        """float32 [4, 4] whose columns are those of projection * view (m[c] = column c)."""
        m = self.projection(aspect) * self.view()
        return np.array([list(m[c]) for c in range(4)], np.float32)

    # ------------------------------------------------------------------------------------------
    def orbit(self, dx: float, dy: float) -> None:
        """Rotate by a mouse drag of (dx, dy) pixels."""
        self.yaw -= dx * 0.01
        self.pitch = max(-1.55, min(1.55, self.pitch + dy * 0.01))

    def pan(self, dx: float, dy: float, viewport_height: float) -> None:
        """Move the target so that the point under the cursor follows a drag of (dx, dy) pixels."""
        per_pixel = 2 * self.distance * math.tan(self.fov_y / 2) / max(viewport_height, 1.0)
        v = self.view()
        right = glm.vec3(v[0][0], v[1][0], v[2][0])
        up = glm.vec3(v[0][1], v[1][1], v[2][1])
        self.target += (-right * dx + up * dy) * per_pixel

    def turn(self, yaw_deg: float, pitch_deg: float, zoom_steps: float = 0.0) -> None:
        """Turn the framed view by degrees (pitch kept short of the poles), then zoom."""
        self.yaw += math.radians(yaw_deg)
        self.pitch = max(-1.55, min(1.55, self.pitch + math.radians(pitch_deg)))
        if zoom_steps:
            self.zoom(zoom_steps)

    def zoom(self, steps: float) -> None:
        """Scroll: each step moves 10 % closer (positive) or further (negative)."""
        self.distance = max(self.radius * 0.05, self.distance * 0.9 ** steps)
