"""Weighted k-nearest-neighbour classification of features (Wu et al., 2018; DINO's kNN).

Each query is compared with every reference by cosine similarity; the `k`
most similar references vote for their labels with weight
`exp(similarity / temperature)`, and the class with the largest total wins.
The weighted vote and temperature 0.07 are Wu et al. 2018's ("Unsupervised
Feature Learning via Non-Parametric Instance Discrimination", section 3.4);
k = 20 is the best of the values DINO's `eval_knn.py` tries (10, 20, 100,
200; Caron et al., 2021).
"""

import numpy as np


def knn_predict(reference, reference_labels, queries, num_classes, k=20, temperature=0.07,
                chunk=1024):
    """Predicted class of every query row by weighted kNN.

    Args:
        reference: `(N, D)` features of the labelled reference set.
        reference_labels: `(N,)` ints in `[0, num_classes)`.
        queries: `(M, D)` features to classify.
        num_classes: int.
        k: neighbours per query (capped at N).
        temperature: float > 0.
        chunk: queries compared at once (memory `chunk * N` floats).

    Returns:
        `(M,)` int64 predicted labels.

    Example:
    ```python
    import numpy as np
    from keras_mae.knn import knn_predict
    ref = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    knn_predict(ref, np.array([0, 0, 1]), np.array([[0.1, 1.0]]), 2, k=1)  # [1]
    ```
    """
    reference = np.asarray(reference, np.float32)
    queries = np.asarray(queries, np.float32)
    labels = np.asarray(reference_labels).astype(np.int64)
    if reference.ndim != 2 or queries.ndim != 2 or reference.shape[1] != queries.shape[1]:
        raise ValueError(f"reference and queries must be (N, D) and (M, D). Received: "
                         f"{reference.shape} and {queries.shape}")
    if labels.shape != (len(reference),):
        raise ValueError(f"reference_labels must have shape ({len(reference)},). "
                         f"Received: {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"reference_labels must lie in [0, {num_classes}). Received values "
                         f"from {labels.min()} to {labels.max()}")
    if not (isinstance(k, int) and k >= 1) or not temperature > 0:
        raise ValueError(f"k must be an int >= 1 and temperature > 0. Received: k={k!r}, "
                         f"temperature={temperature!r}")
    k = min(k, len(reference))
    reference = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    predictions = []
    for start in range(0, len(queries), chunk):
        similarity = queries[start:start + chunk] @ reference.T
        nearest = nearest_indices(similarity, k)
        weights = np.exp(np.take_along_axis(similarity, nearest, axis=1) / temperature)
        votes = np.zeros((len(similarity), num_classes), np.float64)
        np.add.at(votes, (np.arange(len(similarity))[:, None], labels[nearest]), weights)
        predictions.append(np.argmax(votes, axis=1))
    return np.concatenate(predictions) if predictions else np.zeros((0,), np.int64)


def nearest_indices(similarity, k):
    """Column indices of the `k` largest entries of each row of `similarity`, in no particular order.

    Args:
        similarity: `(M, N)` floats.
        k: int in `[1, N]`.

    Returns:
        `(M, k)` int64 indices.

    Example:
    ```python
    import numpy as np
    from keras_mae.knn import nearest_indices
    nearest_indices(np.array([[0.1, 0.9, 0.5, 0.7]]), 2)  # [[3, 1]] (the order may vary)
    ```
    """
    return np.argpartition(-similarity, k - 1, axis=1)[:, :k]


def knn_accuracy(reference, reference_labels, queries, query_labels, num_classes, k=20,
                 temperature=0.07):
    """Top-1 accuracy of `knn_predict` against `query_labels` (a float in [0, 1])."""
    predicted = knn_predict(reference, reference_labels, queries, num_classes, k, temperature)
    return float(np.mean(predicted == np.asarray(query_labels).astype(np.int64)))
