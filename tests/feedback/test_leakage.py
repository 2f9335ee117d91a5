from __future__ import annotations

from evalhub.datasets.quality import overlapping_prompts

EVAL = [
    ("Write a product description for the Tallis mixing bowl set, three nesting bowls in brushed stainless steel "
     "with silicone bases and pouring lips, dishwasher safe, for home bakers"),
    ("Write a product description for the Pebblebox speaker, a pocket speaker in recycled aluminium with twelve hours "
     "of battery and a splash-proof grille, for students"),
]


def test_exact_and_near_duplicates_of_held_out_prompts_are_caught_and_clean_ones_kept() -> None:
    candidates = [
        EVAL[0].upper().replace(" ", "  "),  # same prompt, different case and spacing
        EVAL[1].replace("twelve", "ten").replace("students", "commuters"),  # two words changed
        "Write a product description for the Fjell flask, a borosilicate glass bottle with a bamboo lid",
        "Summarise this legal brief in three sentences for a client who is not a lawyer",
    ]
    assert overlapping_prompts(candidates, EVAL) == [0, 1]


def test_nothing_to_compare_means_nothing_leaked() -> None:
    assert overlapping_prompts([], EVAL) == []
    assert overlapping_prompts(EVAL, []) == []
