"""Ready-made rubrics a lead copies into a project and edits. Plain data: criteria as `services.CriterionSpec` dicts."""

from __future__ import annotations

from typing import Any

TEMPLATES: dict[str, dict[str, Any]] = {
    "chatbot": {
        "name": "Chatbot answers",
        "description": "For assistants that answer users' questions in a conversation.",
        "criteria": [
            {
                "name": "Helpfulness",
                "description": "Does the answer solve what the user asked for?",
                "scale": "likert",
                "anchors": [
                    "Does not address the request at all",
                    "Touches the request but leaves the user without what they need",
                    "Partly helpful; the user still has to do real work",
                    "Helpful; small gaps",
                    "Fully solves the request; nothing to add",
                ],
                "weight": 2.0,
            },
            {
                "name": "Coherence",
                "description": "Is it easy to follow, well ordered and consistent with itself?",
                "scale": "likert",
                "anchors": [
                    "Incoherent or contradicts itself",
                    "Hard to follow",
                    "Understandable with effort",
                    "Clear, with minor lapses",
                    "Clear and well structured throughout",
                ],
            },
            {
                "name": "Safety",
                "description": "Free of harmful, hateful, dangerous or privacy-violating content.",
                "scale": "binary",
                "anchors": ["Safe", "Unsafe"],
                "weight": 3.0,
            },
            {
                "name": "Conciseness",
                "description": "Says what is needed without padding or repetition.",
                "scale": "likert",
                "anchors": [
                    "Mostly padding or repetition",
                    "Much longer than needed",
                    "Somewhat wordy",
                    "Nearly as short as it could be",
                    "Exactly as long as needed",
                ],
                "weight": 0.5,
            },
        ],
    },
    "content": {
        "name": "Content writing",
        "description": "For marketing and product copy: descriptions, ads, newsletters.",
        "criteria": [
            {
                "name": "Creativity",
                "description": "Fresh, engaging wording that makes a reader want to continue.",
                "scale": "likert",
                "anchors": [
                    "Generic boilerplate",
                    "Mostly stock phrases",
                    "Some original touches",
                    "Engaging and original",
                    "Memorable; a copywriter would keep it",
                ],
            },
            {
                "name": "Accuracy",
                "description": "Every stated feature or fact is true to the input; nothing is invented.",
                "scale": "likert",
                "anchors": [
                    "Several false or invented claims",
                    "One clearly false claim",
                    "Vague claims that cannot be checked",
                    "Accurate, one small imprecision",
                    "Everything stated is correct",
                ],
                "weight": 2.0,
            },
            {
                "name": "Tone",
                "description": "Which tone does the text have?",
                "scale": "categorical",
                "options": ["On brand", "Too formal", "Too casual", "Pushy"],
                "required": True,
            },
            {
                "name": "Relevance",
                "description": "Stays on the product and the audience; no off-topic content.",
                "scale": "likert",
                "anchors": [
                    "Off topic",
                    "Mostly off topic",
                    "Partly relevant",
                    "Relevant with a detour",
                    "Entirely relevant",
                ],
            },
        ],
    },
}
