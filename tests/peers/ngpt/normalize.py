# An excerpt of NVIDIA/ngpt train.py (commit ed19eb232380d41a9d71024b58d2403937d8f2c9, lines 388-408),
# verbatim below the marker line; MIT licence, see LICENSE in this folder. In train.py these functions read
# the globals `module`, `transformer` and `config` that its lines 379-386 set from the model; whoever calls
# normalize_matrices() sets those three names on this module first (tests/test_peers.py does).
# ---- upstream lines 388-408 ----
def justnorm(x, idim=-1):
    dtype = x.dtype
    x = x.float()
    res = (x / x.norm(p=2, dim=idim, keepdim=True)).to(dtype=dtype) 
    return res

def normalize_matrices():
    transformer.wte.weight.data.copy_(justnorm(transformer.wte.weight.data, 1))         # V, n_embd
    module.lm_head.weight.data.copy_(justnorm(module.lm_head.weight.data, 1))           # V, n_embd
    

    for layer_idx in range(0, config.n_layer):
        block = transformer["h"][layer_idx]

        block.query.weight.data.copy_(justnorm(block.query.weight.data, 1))             # n_proj, n_embd
        block.key.weight.data.copy_(justnorm(block.key.weight.data, 1))                 # n_proj, n_embd
        block.value.weight.data.copy_(justnorm(block.value.weight.data, 1))             # n_proj, n_embd
        block.att_c_proj.weight.data.copy_(justnorm(block.att_c_proj.weight.data, 0))   # n_embd, n_proj

        block.c_fc.weight.data.copy_(justnorm(block.c_fc.weight.data, 1))               # n_proj, n_embd
        block.mlp_c_proj.weight.data.copy_(justnorm(block.mlp_c_proj.weight.data, 0))   # n_embd, n_proj
