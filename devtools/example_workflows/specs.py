"""The example workflows as compact specs: which nodes, where, which widget values, which links.

builder.py turns each into example_workflows/<name>.json (the UI format the frontend loads);
widgets not named here take their /object_info defaults. Every example runs on the toy-world model on a CPU
in seconds (tens of steps, 64x64), so the tests run them all through a real server.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Ref:
    node: int
    slot: int = 0


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    values: dict = field(default_factory=dict)
    title: str = ""


@dataclass
class Example:
    name: str
    note: str
    nodes: list[Node]
    thumbnail_node: int  # the PreviewImage whose image becomes <name>.jpg
    needs: tuple[str, ...] = ()  # examples that must have run first (they write the files this one reads)
    inputs: tuple[str, ...] = ()  # files from example_workflows/input/ that must be in ComfyUI's input folder


COL = 380  # column width in the canvas
TOY = Ref(1, 0), Ref(1, 1), Ref(1, 2)  # the toy-world loader's MODEL, CLIP, VAE


def loader() -> Node:
    return Node(1, "LOBA_ToyWorldLoader", (0, 120))


def train(node_id: int, prompts: Ref, prefix: str, pos: tuple[int, int], steps: int = 20, **extra) -> Node:
    model, clip, vae = TOY
    values = {"model": model, "clip": clip, "vae": vae, "prompts": prompts, "max_train_steps": steps,
              "learning_rate": 2e-3, "network_dim": 4, "network_alpha": 4.0, "seed": 0, "max_denoising_steps": 8,
              "leco_denoise_guidance_scale": 5.0, "denoise_with_adapter": False, "preview_every": 10,
              "preview_weights": "-1, 0, 1", "filename_prefix": prefix, **extra}
    return Node(node_id, "LOBA_TrainSlider", pos, values)


def grid(node_id: int, slider: Ref, prompts: str, weights: str, pos: tuple[int, int]) -> Node:
    model, clip, vae = TOY
    return Node(node_id, "LOBA_SliderPreviewGrid", pos, {
        "model": model, "clip": clip, "vae": vae, "slider": slider, "prompts": prompts, "weights": weights,
        "seed": 1, "steps": 12, "cfg": 5.0, "width": 64, "height": 64})


def preview(node_id: int, image: Ref, pos: tuple[int, int]) -> Node:
    return Node(node_id, "PreviewImage", pos, {"images": image})


def trained_example(name: str, note: str, prompt_nodes: list[Node], prompts: Ref, prefix: str, grid_prompts: str,
                    weights: str, **train_extra) -> Example:
    """Loader -> prompt nodes -> Train Slider -> Preview Grid, with the loss curve and the grid previewed."""
    x = 2 * COL
    nodes = [loader(), *prompt_nodes, train(10, prompts, prefix, (x, 0), **train_extra),
             grid(11, Ref(10, 0), grid_prompts, weights, (x + COL + 40, 0)),
             preview(12, Ref(11, 0), (x + 2 * COL + 80, 0)), preview(13, Ref(10, 1), (x + COL + 40, 560))]
    return Example(name, note, nodes, thumbnail_node=12)


def erase_red_nodes() -> list[Node]:
    """The erase example's prompts (red erased, a blue circle and the empty prompt kept) and its Sampling node;
    the resume example must use the very same ones to continue its checkpoint."""
    return [Node(2, "LOBA_PromptPair", (COL, 0), {"target": "a red circle", "action": "erase", "unconditional": "a circle",
                                                 "neutral": "a circle"}),
            Node(3, "LOBA_PreservationPrompt", (COL, 470), {"prompt": "a blue circle", "prompts": Ref(2, 0)}),
            Node(4, "LOBA_PreservationPrompt", (COL, 640), {"prompt": "", "prompts": Ref(3, 0)}),
            Node(5, "LOBA_Sampling", (COL, 810), {"trajectory_cache": 4, "trajectory_refresh_every": 48})]


ERASE = trained_example(
    "loba_erase_concept",
    "## Erase a concept\nTrains a slider that removes **red** from *a red circle* (erase: the target is pushed away "
    "from what the concept adds), while *a blue circle* and the empty prompt must not move (preservation). **LOBA "
    "Sampling** turns on the trajectory cache (several times faster steps). Runs on the built-in toy-world model on a "
    "CPU in under a minute. At weight 1 the red circle loses its red; weight 0 is the "
    "base model. Swap the loader for **Load Checkpoint** and write your own prompts for a real model (and raise the "
    "steps to a few hundred). Also writes a resumable checkpoint every 20 steps (used by *loba_resume_from_checkpoint*).",
    erase_red_nodes(), Ref(4, 0), "loba/erase-red", "a red circle\na blue circle", "0, 1, 2", steps=150, save_every_n_steps=20,
    max_denoising_steps=25, sampling=Ref(5, 0))

ENHANCE = trained_example(
    "loba_enhance_concept",
    "## Enhance a concept\nTrains a slider that makes *a circle* more **blue** (enhance: the target moves toward what "
    "the positive prompt adds). Weight 0 is the base model; higher weights push harder.",
    [Node(2, "LOBA_PromptPair", (COL, 0), {"target": "a circle", "action": "enhance", "positive": "a blue circle",
                                          "unconditional": "a circle", "neutral": "a circle"})],
    Ref(2, 0), "loba/enhance-blue", "a circle\na square", "0, 1, 2")

SLIDER = trained_example(
    "loba_bidirectional_slider",
    "## A bidirectional slider\nOne slider with two poles: +1 makes the shape **large**, -1 makes it **small** "
    "(Slider Target trains both directions). Dial it anywhere from -2 to 2 with Apply Slider or the stock Load LoRA.",
    [Node(2, "LOBA_SliderTarget", (COL, 0), {"target_class": "a circle", "positive": "a large circle",
                                            "negative": "a small circle"})],
    Ref(2, 0), "loba/size-slider", "a circle\na red square", "-2, -1, 0, 1, 2")

MASKED = replace(trained_example(
    "loba_masked_regional_slider",
    "## A masked (regional) slider\nThe loss only counts inside a painted region. **Load Image** holds "
    "`loba_mask_left_half.png` (copy it from this pack's `example_workflows/input/` into `ComfyUI/input/`, or upload "
    "any image): right-click Load Image > *Open in MaskEditor* and paint the region to train (the painted part becomes "
    "the MASK). **LOBA Mask** grows/feathers it; the Prompt Pair trains only there. The mask is resized to each "
    "training resolution, so any size with the right aspect works.",
    [Node(5, "LoadImage", (0, 420), {"image": "loba_mask_left_half.png"}),
     Node(6, "LOBA_Mask", (COL, 560), {"mask": Ref(5, 1), "grow": 0, "feather": 2.0}),
     Node(2, "LOBA_PromptPair", (COL, 0), {"target": "a red circle", "action": "erase", "unconditional": "a circle",
                                          "neutral": "a circle", "mask": Ref(6, 0)})],
    Ref(2, 0), "loba/erase-red-left", "a red circle\na red square", "0, 1, 2"), inputs=("loba_mask_left_half.png",))

RESUME = replace(trained_example(
    "loba_resume_from_checkpoint",
    "## Resume from a checkpoint\nContinues the *loba_erase_concept* run from its step-20 checkpoint up to 150 steps: "
    "**run loba_erase_concept first** (it writes `output/loba_checkpoints/loba/erase-red_00001_/checkpoints/step-000020.pt`; "
    "each run has its own folder, numbered like its slider, so pick yours if you ran it more than once; checkpoints are written every `checkpoint_every` steps before the last). Prompts and "
    "settings must be those of the run that wrote the checkpoint; only steps, checkpoint_every and save_precision may "
    "change. A resumed run ends with exactly the slider of an uninterrupted 150-step run.",
    erase_red_nodes(), Ref(4, 0), "loba/erase-red-resumed", "a red circle\na blue circle", "0, 1, 2", steps=150, save_every_n_steps=20,
    max_denoising_steps=25, sampling=Ref(5, 0),
    resume_file="loba_checkpoints/loba/erase-red_00001_/checkpoints/step-000020.pt"), needs=("loba_erase_concept",))


def reattach_example() -> Example:
    """U-LOBA on the entangled world: "a triangle" (red 80% of the time) re-attached to a triangle of any color."""
    x = 2 * COL
    colors = "a red triangle\na blue triangle\na green triangle\na yellow triangle"
    nodes = [Node(1, "LOBA_ToyWorldLoader", (0, 120), {"world": "entangled"}),
             Node(2, "LOBA_ReattachPrompt", (COL, 0), {"caption": "a triangle", "redirect": colors, "explicit": "auto",
                                                      "resolution": 64, "batch_size": 2}),
             Node(3, "LOBA_PreservationPrompt", (COL, 520), {"prompt": "", "prompts": Ref(2, 0)}),
             Node(4, "LOBA_PreservationPrompt", (COL, 690), {"prompt": "a circle", "prompts": Ref(3, 0)}),
             Node(5, "LOBA_PreservationPrompt", (COL, 860), {"prompt": "a square", "prompts": Ref(4, 0)}),
             Node(6, "LOBA_Targeting", (0, 520), {"preset": "cross_attention_kv", "network_dim": 4, "network_alpha": 4.0}),
             Node(7, "LOBA_Loss", (0, 820), {"preservation_weight": 5.0}),
             Node(8, "LOBA_Sampling", (0, 1040), {"trajectory_cache": 4, "trajectory_refresh_every": 48, "min_timestep": 600}),
             train(10, Ref(5, 0), "loba/reattach-triangle", (x, 0), steps=120, max_denoising_steps=25, learning_rate=5e-3,
                   targeting=Ref(6, 0),
                   loss=Ref(7, 0), sampling=Ref(8, 0), canary_every=20, preview_weights="0, 0.5, 1", preview_every=60),
             grid(11, Ref(10, 0), "a triangle\na red triangle\na blue triangle\na small circle\na blue square",
                  "0, 0.5, 1", (x + COL + 40, 0)),
             preview(12, Ref(11, 0), (x + 2 * COL + 80, 0)), preview(13, Ref(10, 1), (x + COL + 40, 900))]
    note = ("## Re-attach a caption (U-LOBA: unlearning without lobotomy)\nOn the *entangled* toy world, **a triangle** "
            "comes out red 80% of the time although the model draws every color when asked. **LOBA Re-attach Prompt** "
            "moves what the caption draws onto the redirect (a triangle of each color, equal shares) while the explicit "
            "prompts (*explicit = auto*: the redirect prompts) keep their output; the preservation prompts hold the empty "
            "prompt and the neighbouring captions. Grid rows: the caption, explicit prompts, controls; columns: "
            "weights 0 / 0.5 / 1. The loss chart shows the canary drift every 20 steps. 120 steps keep the example "
            "short; the shipped recipe (`loba/toyworld/recipes/unlearn-triangle.toml`) trains 300. On a real model: caption "
            "`1girl`, redirect `1girl, general`, preservation prompts the neighbouring captions (`1boy`, `2girls`, ...).")
    return Example("loba_reattach_caption", note, nodes, thumbnail_node=12)


def merge_example() -> Example:
    x = 2 * COL
    nodes = [loader(),
             Node(2, "LOBA_PromptPair", (COL, 0), {"target": "a red circle", "action": "erase", "unconditional": "a circle",
                                                  "neutral": "a circle"}),
             Node(3, "LOBA_SliderTarget", (COL, 520), {"target_class": "a circle", "positive": "a large circle",
                                                      "negative": "a small circle"}),
             train(10, Ref(2, 0), "loba/merge-erase-red", (x, 0)),
             train(20, Ref(3, 0), "loba/merge-size", (x, 700)),
             Node(30, "LOBA_MergeSliders", (x + COL + 40, 0), {"slider_1": Ref(10, 0), "slider_2": Ref(20, 0), "mode": "concat"}),
             Node(31, "LOBA_BakeSlider", (x + COL + 40, 330), {"model": TOY[0], "slider": Ref(30, 0), "strength": 1.0}),
             Node(32, "CheckpointSave", (x + COL + 40, 520), {"model": Ref(31, 0), "clip": TOY[1], "vae": TOY[2],
                                                             "filename_prefix": "checkpoints/loba-toy-no-red-large"}),
             grid(11, Ref(30, 0), "a red circle\na blue circle", "0, 1, 2", (x + 2 * COL + 80, 0)),
             preview(12, Ref(11, 0), (x + 3 * COL + 120, 0))]
    note = ("## Merge two sliders and bake them into a model\nTrains *erase red* and the *size* slider, merges them "
            "(concat is exact: each keeps its own effect), previews the merged slider, and bakes it at strength 1 into "
            "the model; the stock **Save Checkpoint** writes `output/checkpoints/loba-toy-no-red-large_00001_.safetensors` (move it to "
            "`models/checkpoints/` to load it with Load Checkpoint). "
            "To merge sliders you saved earlier, use **LOBA Load Slider** instead of the Train nodes.")
    return Example("loba_merge_and_bake", note, nodes, thumbnail_node=12)


def saved_grid_example() -> Example:
    nodes = [loader(),
             Node(2, "LOBA_LoadSlider", (0, 420), {"lora_name": "loba/erase-red_00001_.safetensors"}),
             grid(11, Ref(2, 0), "a red circle\na red square\na blue circle", "-1, 0, 1, 2", (COL, 0)),
             preview(12, Ref(11, 0), (2 * COL + 40, 0))]
    note = ("## Preview grid of a saved slider\nLoads a slider file from `models/loras` (here the one "
            "*loba_erase_concept* saves: **run it first**, or pick any slider in the list) and samples each prompt "
            "(rows) at each weight (columns) from one seed. Columns differ only by the slider weight.")
    return Example("loba_preview_saved_slider", note, nodes, thumbnail_node=12, needs=("loba_erase_concept",))


def region_example() -> Example:
    """RC-LOBA: a dark <-> light background slider whose region is the frozen model's attention to the shape word,
    inverted (the background), with the object held to the frozen model."""
    x = 2 * COL
    nodes = [loader(),
             Node(3, "LOBA_AttentionRegion", (0, 520), {"word": "circle", "invert": True, "threshold": 0.5, "grow": 1}),
             Node(2, "LOBA_SliderTarget", (COL, 0), {"target_class": "a circle", "positive": "a circle on a light background",
                                                    "negative": "a circle on a dark background", "resolution": 64,
                                                    "batch_size": 2, "region": Ref(3, 0), "mask_outside": "hold"}),
             # The trajectory cache: 100 steps of 25-step denoises would take minutes on a CPU without it.
             Node(5, "LOBA_Sampling", (COL, 560), {"trajectory_cache": 4, "trajectory_refresh_every": 48}),
             train(10, Ref(2, 0), "loba/background-region", (x, 0), steps=100, max_denoising_steps=25, sampling=Ref(5, 0)),
             grid(11, Ref(10, 0), "a circle\na red circle\na blue circle", "-1, 0, 1", (x + COL + 40, 0)),
             preview(12, Ref(11, 0), (x + 2 * COL + 80, 0)), preview(13, Ref(10, 1), (x + COL + 40, 560))]
    note = ("## Region-controlled slider (RC-LOBA): the background only\nA dark <-> light **background** slider that "
            "must not redraw the shape. **LOBA Attention Region** takes the region from the model itself: at every "
            "step, the frozen model's cross-attention to *circle* in the prompt says where the circle is; *invert* "
            "makes the region everything else (the background, grown by one latent pixel). With *mask_outside = hold* "
            "the circle is held to what the frozen model draws, so its shape, color and size stay while the background "
            "moves. No mask to paint: the region follows the object in every sample. Grid: -1 dark, 0 base, +1 light. "
            "On a real model: the word of the subject (`girl`, `car`), inverted for a background or lighting slider.")
    return Example("loba_region_background_slider", note, nodes, thumbnail_node=12)


def style_shift_example() -> Example:
    """ST-LOBA on the entangled world: content prompts migrated to the pastel palette, the object's region taking
    all of the change and the background a fifth of it (over-layered regions)."""
    x = 2 * COL
    content = ("a circle => a pastel circle\na red circle => a pastel red circle\na yellow circle => a pastel yellow "
               "circle\na square => a pastel square\na large red square => a large pastel red square\n"
               "a triangle => a pastel triangle")
    nodes = [Node(1, "LOBA_ToyWorldLoader", (0, 120), {"world": "entangled"}),
             Node(3, "LOBA_AttentionRegion", (0, 520), {"word": "circle", "threshold": 0.5, "grow": 1}),
             Node(4, "LOBA_RegionLayer", (0, 800), {"weight": 0.2, "box": "0, 0, 1, 1"}),
             Node(6, "LOBA_RegionLayer", (0, 1040), {"weight": 1.0, "region": Ref(3, 0), "words": "circle, square, triangle",
                                                    "layers": Ref(4, 0)}),
             Node(2, "LOBA_StyleShift", (COL, 0), {"style": "pastel", "content": content, "replaces": "vivid",
                                                  "explicit": "a vivid red circle\na vivid yellow circle",
                                                  "resolution": 64, "batch_size": 2, "layers": Ref(6, 0)}),
             Node(7, "LOBA_PreservationPrompt", (COL, 700), {"prompt": "", "prompts": Ref(2, 0)}),
             Node(8, "LOBA_Targeting", (COL, 870), {"preset": "cross_attention_kv", "network_dim": 4, "network_alpha": 4.0}),
             Node(9, "LOBA_Loss", (COL, 1170), {"preservation_weight": 5.0}),
             Node(5, "LOBA_Sampling", (COL, 1390), {"trajectory_cache": 4, "trajectory_refresh_every": 48}),
             train(10, Ref(7, 0), "loba/style-pastel", (x, 0), steps=100, max_denoising_steps=25, learning_rate=5e-3,
                   targeting=Ref(8, 0), loss=Ref(9, 0), sampling=Ref(5, 0), preview_weights="0, 1"),
             grid(11, Ref(10, 0), "a circle\na red circle\na large red square\na vivid red circle", "0, 0.5, 1",
                  (x + COL + 40, 0)),
             preview(12, Ref(11, 0), (x + 2 * COL + 80, 0)), preview(13, Ref(10, 1), (x + COL + 40, 560))]
    note = ("## Style shift (ST-LOBA): one render style for every prompt\nOn the *entangled* toy world every scene has a "
            "palette (vivid or pastel) that prompts may name. **LOBA Style Shift** re-attaches each content prompt to its "
            "styled form (`a red circle => a pastel red circle`), so at weight 1 the content prompts draw pastel and keep "
            "what they name; the explicit old-style prompts (*a vivid red circle*) keep their output. Two **LOBA Region "
            "Layer** nodes stack the regions: the whole image at 0.2 below, the object (attention to its shape word, grown "
            "by one latent pixel) at 1 on top, so the object takes all of the change and the background a fifth. Grid "
            "rows: content prompts and an explicit vivid prompt; columns: weights 0 / 0.5 / 1. On a real model: style "
            "`watercolor`, template `{content}, {style}`, content your usual prompts, explicit the old style's tag.")
    return Example("loba_style_shift", note, nodes, thumbnail_node=12)


def flux_example() -> Example:
    """A Flux slider: the flow toy world (a toy Flux.1 transformer in ComfyUI's own Flux class), small <-> large."""
    x = 2 * COL
    model, clip, vae = TOY
    nodes = [Node(1, "LOBA_ToyWorldLoader", (0, 120), {"world": "flow"}),
             Node(2, "LOBA_SliderTarget", (COL, 0), {"target_class": "a circle", "positive": "a large circle",
                                                    "negative": "a small circle", "resolution": 64, "batch_size": 2}),
             Node(5, "LOBA_Sampling", (COL, 520), {"timestep_spacing": "trailing"}),
             train(10, Ref(2, 0), "loba/flux-size-slider", (x, 0), steps=60, max_denoising_steps=12, sampling=Ref(5, 0)),
             Node(11, "LOBA_SliderPreviewGrid", (x + COL + 40, 0), {
                 "model": model, "clip": clip, "vae": vae, "slider": Ref(10, 0), "prompts": "a circle\na red square",
                 "weights": "-1, 0, 1", "seed": 1, "steps": 12, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple",
                 "width": 64, "height": 64}),
             preview(12, Ref(11, 0), (x + 2 * COL + 80, 0)), preview(13, Ref(10, 1), (x + COL + 40, 560))]
    note = ("## A Flux slider (flow matching)\nThe *flow* toy world is drawn by a toy **Flux.1-architecture** "
            "transformer (double + single blocks, flow matching, no guidance embedding: schnell-like), loaded as "
            "ComfyUI's own Flux model. Train Slider trains in velocity space on the model's own sigma schedule and "
            "writes a kohya Flux LoRA (`lora_unet_double_blocks_N_img_attn_qkv`, ...) that the stock Load LoRA reads. "
            "Grid: -1 small, 0 base, +1 large, sampled with euler / simple. On a real model: UNETLoader (flux1-dev) + "
            "DualCLIPLoader (t5xxl, clip_l, type flux) instead of the Toy World Loader, Train Slider's `guidance` 3.5 "
            "for dev, sides divisible by 16.")
    return Example("loba_flux_slider", note, nodes, thumbnail_node=12)


EXAMPLES = [ERASE, ENHANCE, SLIDER, MASKED, RESUME, merge_example(), saved_grid_example(), reattach_example(),
            region_example(), flux_example(), style_shift_example()]
