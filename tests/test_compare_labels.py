"""How a comparison (the grid, the exported video, the gallery) names runs: by their number in
the store, and by their image's name when their images differ; "loop" for a run that ends on
its own start image (issue 16)."""

from __future__ import annotations

from typing import Any

from framepack_widgets.compare import image_names, labels_for
from framepack_widgets.runs import Run
from framepack_widgets.widget import _protocol as proto


def run(prompt: str = "a boat drifts", *, seq: int | None = None, **params: Any) -> Run:
    values = dict(prompt=prompt, negative_prompt="", duration=10, start_image={"sha256": "s1"}, end_image=None)
    values.update(params)
    return Run.from_dict({"run_id": f"id-{seq}-{prompt}", "seq": seq, "params": values})


def test_runs_from_different_images_are_labelled_by_the_images_names() -> None:
    runs = [run(seq=1, start_image={"sha256": "s1", "name": "lake.jpg"}),
            run(seq=2, start_image={"sha256": "s2", "name": "beach.jpg"}),
            run(seq=3, start_image={"sha256": "s3", "url": "https://x.org/a/forest.png?t=1"})]
    runs[2].params["start_image"] = {"url": "https://x.org/a/forest.png?t=1"}
    assert labels_for(runs) == ["lake.jpg", "beach.jpg", "forest.png"]
    assert image_names(runs) == {"s1": "lake.jpg", "s2": "beach.jpg", "https://x.org/a/forest.png?t=1": "forest.png"}


def test_unnamed_or_same_named_images_are_numbered_as_before() -> None:
    unnamed = [run(seq=1, start_image={"sha256": "s1", "name": "lake.jpg"}), run(seq=2, start_image={"sha256": "s2"})]
    assert labels_for(unnamed) == ["start image 1", "start image 2"]
    twins = [run(seq=1, start_image={"sha256": "s1", "name": "photo.jpg"}),
             run(seq=2, start_image={"sha256": "s2", "name": "photo.jpg"})]
    assert labels_for(twins) == ["start image 1", "start image 2"], "two images of one name are told apart"


def test_identical_stored_runs_are_labelled_by_their_number_and_a_loop_says_so() -> None:
    assert labels_for([run(seq=3), run(seq=4)]) == ["run #3", "run #4"]
    assert labels_for([run(), run()]) == ["take 1", "take 2"], "before they are stored: takes"
    looped = run(seq=5, end_image={"sha256": "s1"})
    assert looped.loop and not run(seq=6).loop
    assert labels_for([run(seq=6), looped]) == ["no end image", "loop"]
    other_end = run(seq=7, end_image={"sha256": "e9", "name": "sunset.jpg"})
    assert labels_for([looped, other_end]) == ["loop", "sunset.jpg"]


def test_the_grid_shows_numbers_and_image_names() -> None:
    runs = [run(seq=3, start_image={"sha256": "a" * 64, "name": "lake.jpg"}),
            run(seq=4, start_image={"sha256": "b" * 64, "name": "beach.jpg"}, end_image={"sha256": "b" * 64})]
    grid = proto.comparison(runs)
    assert [i["label"] for i in grid["items"]] == ["#3", "#4"]
    assert [i["start_image"] for i in grid["items"]] == [{"sha": "a" * 16, "name": "lake.jpg"},
                                                         {"sha": "b" * 16, "name": "beach.jpg"}]
    assert [i["loop"] for i in grid["items"]] == [False, True]
    assert [i["caption"] for i in grid["items"]] == ["lake.jpg · no end image", "beach.jpg · loop"]
    unstored = proto.comparison([run("zoom in"), run("pan left")])
    assert [i["label"] for i in unstored["items"]] == ["A", "B"]
