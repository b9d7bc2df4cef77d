from xgen_declare.placement.layers import OUTPUT_FIRST, OUTPUT_LAST, assign_layers, normalize_n_gpu_layers


def counts(placement, n_dev):
    return [placement.count(i) for i in range(n_dev)], placement.count(None)


def test_all_layers_single_gpu():
    p = assign_layers(32, 33, [1.0])
    assert p == [0] * 33


def test_output_first_rule():
    # since llama.cpp PR #18148: the output layer (index n_layer) goes first, to the last device
    p = assign_layers(32, 1, [1.0, 1.0], OUTPUT_FIRST)
    assert p[32] == 0 and p[:32] == [None] * 32  # one offloaded slot: split position 0 -> device 0
    assert assign_layers(32, 33, [1.0, 1.0], OUTPUT_FIRST)[32] == 1  # all offloaded: the last device
    p = assign_layers(32, 20, [1.0], OUTPUT_FIRST)
    assert p[:13] == [None] * 13 and p[13:] == [0] * 20


def test_output_last_rule():
    p = assign_layers(32, 20, [1.0], OUTPUT_LAST)
    assert p[:12] == [None] * 12 and p[12:32] == [0] * 20 and p[32] is None
    assert assign_layers(32, 33, [1.0, 1.0], OUTPUT_LAST)[32] == 1


def test_even_split_ties_go_up():
    # 81 offloaded layers over [1, 1]: x = j/81; device 0 while x < 0.5 -> j = 0..40
    assert counts(assign_layers(80, 81, [1.0, 1.0]), 2) == ([41, 40], 0)
    # 32 layers + output = 33 over [1, 1]: j = 0..16 on device 0 (16/33 < 0.5)
    assert counts(assign_layers(32, 33, [1.0, 1.0]), 2) == ([17, 16], 0)


def test_split_by_counts_is_exact():
    for a in range(0, 82):
        assert counts(assign_layers(80, 81, [float(a), float(81 - a)] if a < 81 else [81.0, 0.0]), 2)[0] == \
            [a, 81 - a]


def test_three_way_proportions():
    assert counts(assign_layers(80, 81, [3.0, 1.0, 1.0]), 3) == ([49, 16, 16], 0)


def test_normalize():
    assert normalize_n_gpu_layers(-1, 32) == 33
    assert normalize_n_gpu_layers("all", 32) == 33
    assert normalize_n_gpu_layers(99, 32) == 33
    assert normalize_n_gpu_layers(0, 32) == 0
