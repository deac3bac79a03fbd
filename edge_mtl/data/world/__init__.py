"""The synthetic driving world: structured domain randomization, exact labels.

Modules by concern: `params` (the samplers' parameters), `scene` (sampling the camera, road,
surroundings, traffic, light, weather and sensor), `geometry` (rays, ground plane, projection,
exact ray casting), `shapes` (silhouettes of vehicles, people and props), `materials`
(textures, paint, colours), `effects` (light, weather and sensor effects), `render`
(compositing and labels), `bench` (frames per second).
"""

from edge_mtl.data.world.render import MIN_BOX_HEIGHT, MIN_VISIBLE, Frame, render, render_random
from edge_mtl.data.world.scene import CAR, MAX_DEPTH, PEDESTRIAN, SHAPES, TRUCK, Scene, Vehicle, sample_scene
from edge_mtl.types import CLASSES

CLASS_NAMES = CLASSES

__all__ = ["CAR", "CLASS_NAMES", "MAX_DEPTH", "MIN_BOX_HEIGHT", "MIN_VISIBLE", "PEDESTRIAN", "SHAPES",
           "TRUCK", "Frame", "Scene", "Vehicle", "render", "render_random", "sample_scene"]
