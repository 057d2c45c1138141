// hqflow BN-folded integer LIF, P lanes (tau 2, hard reset), exactly hqflow.numerics lif_charge,
// lif_fire, lif_reset (and hls_templates/kernels/hqflow_lif.h), in V_BITS two's complement:
//   charge  h = (v + (acc << F) + (bias_int << T)) >>> 1      (v taken as 0 when `first`)
//   fire    s = sign > 0 ? h >= thr : sign < 0 ? h <= -thr : thr <= 0
//   reset   v' = s ? 0 : h
// The sum may wrap term by term in V_BITS; the sum itself fits (numerics.membrane_bits).
// Charge and fire are combinational always blocks; the reset is the caller's registered write of
// `v_next` (hqflow_linear_lif / hqflow_conv_lif). `define HQFLOW_MUT_LIF_GT (a mutation control)
// turns the comparison h >= thr into h > thr.
module hqflow_lif #(parameter integer P = 1, ACC_BITS = 32, V_BITS = 64, F = 0, T = 1) (
    input  wire first,
    input  wire [P*ACC_BITS-1:0] acc,
    input  wire [P*V_BITS-1:0] v,
    input  wire [P*V_BITS-1:0] bias,     // bias_int per lane, V_BITS
    input  wire [P*V_BITS-1:0] thr,      // thr_int >= 0 per lane, V_BITS
    input  wire [P*2-1:0] sign,          // 2'b01: +1, 2'b11: -1, 2'b00: 0
    output reg  [P*V_BITS-1:0] v_next,
    output reg  [P-1:0] spikes
);
    initial if (P < 1 || ACC_BITS < 1 || ACC_BITS > 64 || V_BITS < 2 || V_BITS > 64 || F < 0 || T < 0)
        $error("hqflow_lif: P %0d (>= 1), ACC_BITS %0d (1..64), V_BITS %0d (2..64), F %0d and T %0d (>= 0)",
               P, ACC_BITS, V_BITS, F, T);
    reg [P*V_BITS-1:0] h;              // h_int per lane
    integer p, q, r;
    // charge
    always @* begin : charge
        reg signed [V_BITS-1:0] a, sum;
        for (p = 0; p < P; p = p + 1) begin
            a = $signed(acc[p*ACC_BITS +: ACC_BITS]);
            sum = (a << F) + (bias[p*V_BITS +: V_BITS] << T) + (first ? {V_BITS{1'b0}} : v[p*V_BITS +: V_BITS]);
            h[p*V_BITS +: V_BITS] = sum >>> 1;
        end
    end
    // fire
    always @* begin : fire
        reg signed [V_BITS-1:0] t, nt, hp;
        for (q = 0; q < P; q = q + 1) begin
            t = thr[q*V_BITS +: V_BITS];
            hp = h[q*V_BITS +: V_BITS];
            nt = -t;
            case (sign[q*2 +: 2])
`ifdef HQFLOW_MUT_LIF_GT
                2'b01: spikes[q] = hp > t;
`else
                2'b01: spikes[q] = hp >= t;
`endif
                2'b11: spikes[q] = hp <= nt;
                default: spikes[q] = t <= 0;
            endcase
        end
    end
    // reset (the new membrane; the caller registers it)
    always @* begin : reset
        for (r = 0; r < P; r = r + 1)
            v_next[r*V_BITS +: V_BITS] = spikes[r] ? {V_BITS{1'b0}} : h[r*V_BITS +: V_BITS];
    end
endmodule
